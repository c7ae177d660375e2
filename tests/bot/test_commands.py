"""Slash commands through the real app-command tree, answered over the REST stand-in."""

from __future__ import annotations

import logging
import sqlite3

from storage.recorder import CallRecorder
from storage.records import NewSession
from storage.settings import consents, guild_settings, hints_enabled, set_consent, set_hints, summary_dm_recipients
from tests.bot.conftest import ChannelRef, RoleRef


def _reply(reqs):
    """The message the user saw: the callback's, or the followup's after a defer."""
    followups = [r for r in reqs if r.path.startswith("/webhooks/")]
    return followups[-1] if followups else [r for r in reqs if r.path.endswith("/callback")][0]


async def test_commands_are_synced_on_start(make_bot) -> None:
    h = await make_bot()
    (put,) = h.rest.where("PUT", "/commands")
    assert put.path == f"/applications/{h.rest.application_id}/commands"  # globally: no test guild configured
    names = {c["name"] for c in put.body}
    assert {"join", "leave", "privacy", "optout", "optin", "forget", "hints", "summary", "settings", "log"} <= names
    (log_group,) = [c for c in put.body if c["name"] == "log"]
    assert {o["name"] for o in log_group["options"]} == {"list", "show", "summary", "search", "export", "delete"}


async def test_test_guild_sync(make_bot) -> None:
    h = await make_bot(env={"STALK_DISCORD_TEST_GUILD": "424242"})
    (put,) = h.rest.where("PUT", "/commands")
    assert put.path == f"/applications/{h.rest.application_id}/guilds/424242/commands"


async def test_privacy_is_ephemeral_and_says_what_is_stored(make_bot) -> None:
    h = await make_bot()
    reply = _reply(await h.command("ben", "privacy"))
    assert reply.ephemeral
    text = reply.message_data["content"]
    assert "Audio is never stored" in text and "/optout" in text
    assert "`/forget` deletes your settings and /optin choices, what you said in every stored call" in text
    assert "Transcripts are kept until they are deleted (this bot's operator set no maximum age)." in text


async def test_privacy_states_the_retention_period(make_bot) -> None:
    h = await make_bot(env={"STALK_RETENTION_MAX_AGE_DAYS": "30"})
    text = _reply(await h.command("ben", "privacy")).message_data["content"]
    assert "Transcripts are deleted automatically 30 days after their call started" in text


async def test_hints_on_and_off_are_stored_per_user(make_bot) -> None:
    h = await make_bot()
    reply = _reply(await h.command("ben", "hints", state="on"))
    assert reply.ephemeral and "Hints are on" in reply.message_data["content"]
    assert hints_enabled(h.db, h.users["ben"]) and not hints_enabled(h.db, h.users["cat"])
    await h.command("ben", "hints", state="off")
    assert not hints_enabled(h.db, h.users["ben"])


async def test_summary_dms_on_and_off_reach_only_the_calls_own_people(make_bot) -> None:
    h = await make_bot()
    ben, cat = h.users["ben"], h.users["cat"]
    rec = CallRecorder(h.db)
    sid = rec.start_session(NewSession(source="discord", guild_id=str(h.guild.id)))
    for name, uid in (("Ben", ben), ("Cat", cat)):
        rec.add_participant(sid, name, user_id=str(uid))
    assert summary_dm_recipients(h.db, sid) == set()  # off until turned on
    for who in ("ben", "cat", "dan"):
        reply = _reply(await h.command(who, "summary", state="on"))
        assert reply.ephemeral and "Summaries are on" in reply.message_data["content"]
    assert summary_dm_recipients(h.db, sid) == {ben, cat}  # dan was not in the call
    reply = _reply(await h.command("cat", "summary", state="off"))
    assert "off" in reply.message_data["content"]
    assert summary_dm_recipients(h.db, sid) == {ben}


async def test_optout_and_optin_are_per_guild_choices(make_bot) -> None:
    h = await make_bot()
    await h.command("ben", "optout")
    await h.command("cat", "optin")
    c = consents(h.db, h.guild.id)
    assert c.opted_out == {h.users["ben"]} and c.opted_in == {h.users["cat"]}
    await h.command("ben", "optin")
    assert consents(h.db, h.guild.id).opted_out == frozenset()
    assert consents(h.db, h.guild.id + 1).opted_in == frozenset()


async def test_forget_asks_first_and_then_deletes(make_bot) -> None:
    h = await make_bot()
    ben = h.users["ben"]
    set_hints(h.db, ben, True)
    set_consent(h.db, h.guild.id, ben, "opt_in")
    set_consent(h.db, h.guild.id + 1, ben, "opt_out")
    set_hints(h.db, h.users["cat"], True)

    reply = _reply(await h.command("ben", "forget"))
    assert reply.ephemeral
    assert reply.message_data["content"].startswith("This deletes your settings and /optin choices, what you said")
    assert reply.message_data["content"].endswith("It cannot be undone.")
    buttons = [c["custom_id"] for row in reply.message_data["components"] for c in row["components"]]
    assert buttons == ["forget:yes", "forget:no"]
    assert hints_enabled(h.db, ben)  # nothing deleted before the confirmation
    msg_id = _last_message_id(h)

    # Someone else pressing the button is told off and deletes nothing.
    other = await h.click("cat", msg_id, "forget:yes")
    assert other[0].ephemeral and "Only the person" in other[0].message_data["content"]
    assert hints_enabled(h.db, ben)

    done = await h.click("ben", msg_id, "forget:yes")
    ack = [r for r in done if r.path.endswith("/callback")][0]
    assert ack.body["type"] == 6  # deferred update: the message is edited once the deletion is done
    update = [r for r in done if r.method == "PATCH" and r.path.endswith("/messages/@original")][-1]
    assert "Deleted 2 stored items" in update.body["content"] and update.body.get("components") == []
    assert not hints_enabled(h.db, ben)
    assert consents(h.db, h.guild.id).opted_in == frozenset()
    assert consents(h.db, h.guild.id + 1).opted_out == {ben}  # a standing "don't process me" is kept
    assert hints_enabled(h.db, h.users["cat"])


async def test_forget_cancel_deletes_nothing(make_bot) -> None:
    h = await make_bot()
    set_hints(h.db, h.users["ben"], True)
    await h.command("ben", "forget")
    done = await h.click("ben", _last_message_id(h), "forget:no")
    assert "Nothing was deleted" in done[0].body["data"]["content"]
    assert hints_enabled(h.db, h.users["ben"])


def _last_message_id(h) -> str:
    # The stand-in answers each callback with the message it created; discord.py keys the view by its id.
    callback = [r for r in h.rest.requests if r.path.endswith("/callback")][-1]
    return h.rest.last_callback_message_id[callback.path]


async def test_settings_need_a_manager(make_bot) -> None:
    h = await make_bot()
    reply = _reply(await h.command("ben", "settings", "consent", mode="opt_in"))
    assert reply.ephemeral and "needs the Manage Server permission or Administrator" in reply.message_data["content"]
    assert guild_settings(h.db, h.guild.id).consent_mode == "notice"

    reply = _reply(await h.command("ann", "settings", "consent", mode="opt_in"))  # an administrator
    assert reply.ephemeral and "opt-in" in reply.message_data["content"]
    assert guild_settings(h.db, h.guild.id).consent_mode == "opt_in"

    await h.command("ann", "settings", "role", role=RoleRef(h.manager_role))
    assert guild_settings(h.db, h.guild.id).manager_role_id == h.manager_role
    await h.command("cat", "settings", "transcript", state="on", channel=ChannelRef(h.text.id))  # holds the role
    s = guild_settings(h.db, h.guild.id)
    assert s.live_transcript and s.transcript_channel_id == h.text.id
    reply = _reply(await h.command("ben", "join"))  # no longer anyone's to start
    assert "s-talk managers" not in reply.message_data["content"]
    assert f"<@&{h.manager_role}>" in reply.message_data["content"]


async def test_join_outside_voice_is_refused_politely(make_bot) -> None:
    h = await make_bot(in_voice=())
    reply = _reply(await h.command("ben", "join"))
    assert reply.ephemeral and reply.message_data["content"] == "Join a voice channel first, then use /join."
    reply = _reply(await h.command("ben", "leave"))
    assert reply.ephemeral and "not in a voice channel" in reply.message_data["content"]


async def test_unexpected_errors_are_logged_with_context_and_not_shown(make_bot, caplog) -> None:
    h = await make_bot()
    with sqlite3.connect(h.db.engine.url.database) as conn:
        conn.execute("DROP TABLE user_settings")
    with caplog.at_level(logging.ERROR, logger="bot.discordbot.app"):
        reply = _reply(await h.command("ben", "hints", state="on"))
    text = reply.message_data["content"]
    assert reply.ephemeral and text.startswith("Sorry, that did not work")
    assert "Traceback" not in text and "user_settings" not in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/hints failed" in logged and str(h.users["ben"]) in logged and str(h.guild.id) in logged
    assert "no such table: user_settings" in logged


async def test_everything_posted_has_mentions_off(make_bot) -> None:
    h = await make_bot()
    await h.command("ben", "privacy")
    await h.command("ann", "settings", "show")
    posted = h.rest.posted()
    assert posted
    for r in posted:
        assert r.message_data.get("allowed_mentions") == {"parse": []}, r
