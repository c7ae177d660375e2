"""/log through the real app-command tree and the REST stand-in, on a call recorded from the
reference transcripts of real speech (LibriSpeech test-other, CC BY 4.0) with the log-review
tests' own builders, then stamped into each test's guild.

Cast in the test guild (tests/bot/conftest.py): ann is an administrator, ben and cat are
members, dan is a member who was in no call. The replayed call's speakers alice and bob
become ben (who started it) and cat.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.discordbot.kit import escape
from storage import get_session
from storage.access import Viewer
from storage.models import CallSession, Utterance, utcnow
from storage.search import search
from storage.summaries import get_summary
from tests.bot.conftest import Harness
from tests.bot.discord_rest import snowflake
from tests.bounds import at_most
from tests.logs.conftest import _stamp, copy_call, english_script, record_call


@pytest.fixture(scope="session")
def english_call(tmp_path_factory) -> Path:
    """A database holding one English call (alice, bob)."""
    tmp = tmp_path_factory.mktemp("log-cog")
    path = tmp / "template.db"
    record_call(path, tmp, english_script(), "en")
    return path


async def _bot(make_bot, english_call: Path, tmp_path: Path, **kw: Any) -> tuple[Harness, int]:
    db_path = tmp_path / "calls.db"
    shutil.copyfile(english_call, db_path)
    h = await make_bot(db_path=db_path, **kw)
    with h.db.session() as s:
        sid = s.scalar(select(CallSession.id))
    ben, cat = str(h.users["ben"]), str(h.users["cat"])
    _stamp(h.db, sid, guild=str(h.guild.id), title="Weekly sync", started_by=ben, users={"alice": ben, "bob": cat})
    with h.db.session() as s, s.begin():
        # Verification marks as the voiceprint issue writes them: alice verified, one of hers not.
        ids = list(s.scalars(select(Utterance.id).where(Utterance.session_id == sid).order_by(Utterance.start)))
        s.execute(update(Utterance).where(Utterance.session_id == sid).values(verification="verified"))
        s.execute(update(Utterance).where(Utterance.id == ids[0]).values(verification="mismatch"))
    return h, sid


def _callback(reqs):
    return [r for r in reqs if r.path.endswith("/callback")][0]


def _reply(reqs):
    followups = [r for r in reqs if r.path.startswith("/webhooks/")]
    return followups[-1] if followups else _callback(reqs)


def _embed(req) -> dict[str, Any]:
    data = req.message_data
    (embed,) = data["embeds"]
    return embed


def _buttons(req) -> dict[str, dict[str, Any]]:
    return {c["custom_id"]: c for row in req.message_data.get("components", []) for c in row["components"]}


def _message_id(h: Harness, reqs) -> str:
    return h.rest.last_callback_message_id[_callback(reqs).path]


async def _select(h: Harness, user: str, message_id: str, custom_id: str, value: str):
    message = h.rest._message(str(h.text.id), {"content": ""}, int(message_id))
    payload = h._interaction(user, 3, {"custom_id": custom_id, "component_type": 3, "values": [value]}, message=message)
    return await h._dispatch(payload)


async def _autocomplete(h: Harness, user: str, sub: str, typed: str) -> list[dict[str, Any]]:
    data = {
        "id": str(snowflake()),
        "name": "log",
        "type": 1,
        "options": [
            {"name": sub, "type": 1, "options": [{"name": "session", "type": 3, "value": typed, "focused": True}]}
        ],
    }
    reqs = await h._dispatch(h._interaction(user, 4, data))
    answer = _callback(reqs)
    assert answer.body["type"] == 8
    return answer.body["data"]["choices"]


def _as_member_of(other: Harness, h: Harness, name: str) -> None:
    """``name`` of ``h`` is also a member of ``other`` (same Discord user, another guild)."""
    other.users[name] = h.users[name]
    other.user_payloads[name] = h.user_payloads[name]


def _transcript_lines(embed: dict[str, Any]) -> list[str]:
    return embed["description"].split("\n")


# -- list, show, pagination -------------------------------------------------------------


@pytest.mark.slow
async def test_list_shows_attended_calls_and_admins_see_all(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    # A second call in this guild that only dan and ann were in, started by dan.
    other = copy_call(
        h.db,
        detail,
        guild=str(h.guild.id),
        title="Planning",
        started_by=str(h.users["dan"]),
        people={"alice": ("dan", str(h.users["dan"])), "bob": ("ann", str(h.users["ann"]))},
    )

    reply = _reply(await h.command("ben", "log", "list"))
    assert reply.ephemeral and reply.message_data["allowed_mentions"] == {"parse": []}
    embed = _embed(reply)
    assert f"**#{sid}** Weekly sync" in embed["description"] and f"#{other}" not in embed["description"]
    assert "1-1 of 1" in embed["footer"]["text"]
    assert all(b["disabled"] for b in _buttons(reply).values())  # one page: nowhere to go

    admin = _embed(_reply(await h.command("ann", "log", "list")))
    assert f"**#{sid}**" in admin["description"] and f"**#{other}**" in admin["description"]
    assert "1-2 of 2 (all calls in this server)" in admin["footer"]["text"]

    h.bot.get_cog("LogCog").list_size = 1
    first = _reply(await h.command("ann", "log", "list"))
    assert f"**#{other}**" in _embed(first)["description"]  # newest first
    assert _buttons(first)["log:prev"]["disabled"] and not _buttons(first)["log:next"]["disabled"]
    second = _callback(await h.click("ann", _message_id(h, [first]), "log:next"))
    assert second.body["type"] == 7 and f"**#{sid}**" in second.body["data"]["embeds"][0]["description"]

    cat = _embed(_reply(await h.command("cat", "log", "list")))["description"]
    assert f"**#{sid}**" in cat and f"#{other}" not in cat  # cat was in the first call (as bob)
    dan = _embed(_reply(await h.command("dan", "log", "list")))["description"]
    assert f"**#{other}**" in dan and f"#{sid}" not in dan


async def test_show_pages_with_buttons_only_the_invoker_may_press(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    n = len(detail.utterances)
    assert n >= 5
    h.bot.get_cog("LogCog").show_size = 3
    pages = -(-n // 3)

    reqs = await h.command("ben", "log", "show", session=str(sid))
    first = _callback(reqs)
    assert first.ephemeral and first.message_data["allowed_mentions"] == {"parse": []}
    embed = _embed(first)
    assert embed["title"] == f"#{sid} Weekly sync"
    assert f"page 1/{pages}, utterances 1-3 of {n}" in embed["footer"]["text"]
    buttons = _buttons(first)
    assert buttons["log:prev"]["disabled"] and not buttons["log:next"]["disabled"]
    msg = _message_id(h, reqs)

    # Someone else pressing the buttons is refused and the page does not move.
    refused = await h.click("cat", msg, "log:next")
    assert _callback(refused).ephemeral and "Only the person who asked" in _callback(refused).message_data["content"]

    lines = _transcript_lines(embed)
    page = first
    for k in range(1, pages):
        page = _callback(await h.click("ben", msg, "log:next"))
        assert page.body["type"] == 7
        e = page.body["data"]["embeds"][0]
        assert f"page {k + 1}/{pages}" in e["footer"]["text"]
        lines += _transcript_lines(e)
    last = _buttons(page)
    assert last["log:next"]["disabled"] and not last["log:prev"]["disabled"]
    # Pressing past the end (a stale client) stays on the last page.
    again = _callback(await h.click("ben", msg, "log:next"))
    assert f"page {pages}/{pages}" in again.body["data"]["embeds"][0]["footer"]["text"]

    # Every utterance exactly once, in call order, with speaker, call time and verification mark.
    assert len(lines) == n
    for line, u in zip(lines, detail.utterances):
        assert line.startswith("`") and f"**{u.speaker}**" in line  # the names stored for the call
        assert ("✗" in line) == (u.verification == "mismatch") and ("✓" in line) == (u.verification == "verified")
        assert u.text.strip()[:20] in line
    back = _callback(await h.click("ben", msg, "log:prev"))
    assert f"page {pages - 1}/{pages}" in back.body["data"]["embeds"][0]["footer"]["text"]


async def test_buttons_are_disabled_when_the_view_times_out(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    cog = h.bot.get_cog("LogCog")
    cog.view_timeout, cog.show_size = 0.5, 2
    reqs = await h.command("ben", "log", "show", session=str(sid))
    token = next(r.path for r in reqs if r.path.endswith("/callback")).split("/")[-2]

    def disabled_edit(requests) -> bool:
        return any(r.method == "PATCH" and token in r.path and r.path.endswith("/messages/@original") for r in requests)

    await h.rest.wait_for(disabled_edit, timeout=30)
    edit = [r for r in h.rest.requests if r.method == "PATCH" and token in r.path][-1]
    assert edit.body["components"] and all(c["disabled"] for row in edit.body["components"] for c in row["components"])


async def test_show_of_a_call_one_may_not_see_is_refused_politely(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    reply = _reply(await h.command("dan", "log", "show", session=str(sid)))
    assert reply.ephemeral and reply.message_data["content"] == (
        f"There is no call #{sid} that you can see in this server (it may have been deleted)."
    )
    reply = _reply(await h.command("ben", "log", "show", session="yesterday"))
    assert reply.message_data["content"].startswith("Pick a call from the list")
    missing = _reply(await h.command("ben", "log", "show", session=str(sid + 1000)))
    assert f"no call #{sid + 1000}" in missing.message_data["content"]


# -- summary ----------------------------------------------------------------------------


async def test_summary_pages_the_summary_and_the_shape_for_those_who_may_see(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    h.bot.get_cog("LogCog").summary_size = 4

    reqs = await h.command("cat", "log", "summary", session=str(sid))  # cat was in the call
    first = _callback(reqs)
    assert first.ephemeral and first.message_data["allowed_mentions"] == {"parse": []}
    embed = _embed(first)
    assert embed["title"] == f"#{sid} Weekly sync"
    assert embed["description"].startswith("__**Summary**__ (source: extractive)")
    # The talk share and who spoke when, as a PNG attached to the reply and shown in the embed.
    picture = first.files[f"s-talk-{sid}-shape.png"]
    assert picture.startswith(b"\x89PNG\r\n\x1a\n")
    assert embed["image"]["url"] == f"attachment://s-talk-{sid}-shape.png"
    msg = _message_id(h, reqs)
    text = [embed["description"]]
    page = first
    while not _buttons(page)["log:next"]["disabled"]:
        page = _callback(await h.click("cat", msg, "log:next"))
        text.append(page.body["data"]["embeds"][0]["description"])
    whole = "\n".join(text)
    # Made on demand (the call is from before summaries), stored, and shown with the shape.
    stored = get_summary(h.db, sid)
    assert stored is not None and stored.points
    assert all(escape(p.text, 300) in whole for p in stored.points)
    assert "__**Shape of the conversation**__" in whole
    for name in ("alice", "bob"):
        assert f"- {name}: " in whole and "of the talk" in whole
    assert len(text) > 1 and f"page {len(text)}/{len(text)}" in page.body["data"]["embeds"][0]["footer"]["text"]
    assert detail is not None

    # Someone who was not in the call, and another guild's view, are refused like /log show.
    reply = _reply(await h.command("dan", "log", "summary", session=str(sid)))
    assert reply.message_data["content"] == (
        f"There is no call #{sid} that you can see in this server (it may have been deleted)."
    )


# -- search -----------------------------------------------------------------------------


def _word_of(text: str) -> str:
    return max(re.findall(r"[a-z]{4,}", text.lower()), key=len)


async def test_search_with_context_and_a_jump_to_the_hit(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    target = detail.utterances[-1]
    word = _word_of(target.text)
    expected = search(h.db, Viewer.member(h.users["ben"], h.guild.id), word, page_size=50)
    assert expected.total >= 1

    reqs = await h.command("ben", "log", "search", query=word.upper())  # case-insensitive
    reply = _callback(reqs)
    assert reply.ephemeral and reply.message_data["allowed_mentions"] == {"parse": []}
    embed = _embed(reply)
    assert f"call **#{sid}** Weekly sync" in embed["description"]
    assert re.search(r"\*\*" + re.escape(word) + r"\*\*", embed["description"], re.IGNORECASE)  # highlighted
    before = detail.utterances[-2]
    assert before.text[:15] in embed["description"]  # the utterance before it, as context
    (menu,) = [c for row in reply.message_data["components"] for c in row["components"] if c["type"] == 3]
    values = [o["value"] for o in menu["options"]]
    assert f"{sid}:{target.id}" in values

    # Jump: the call opens at the page holding the hit, the hit marked.
    h.bot.get_cog("LogCog").show_size = 2
    jumped = _callback(await _select(h, "ben", _message_id(h, reqs), "log:jump", f"{sid}:{target.id}"))
    assert jumped.ephemeral and jumped.body["type"] == 4
    e = jumped.body["data"]["embeds"][0]
    pages = -(-len(detail.utterances) // 2)
    assert f"page {pages}/{pages}" in e["footer"]["text"]
    (marked,) = [line for line in _transcript_lines(e) if line.startswith("▶")]
    assert target.text[:20] in marked

    # Someone else cannot use the menu.
    other = _callback(await _select(h, "cat", _message_id(h, reqs), "log:jump", f"{sid}:{target.id}"))
    assert "Only the person who asked" in other.message_data["content"]

    # Search pages: the menu follows the page shown.
    h.bot.get_cog("LogCog").search_size = 1
    total = search(h.db, Viewer.member(h.users["ben"], h.guild.id), "e").total
    assert total >= 2
    reqs = await h.command("ben", "log", "search", query="e")
    first = _callback(reqs)
    assert f"hits 1-1 of {total}" in _embed(first)["footer"]["text"]
    second = _callback(await h.click("ben", _message_id(h, reqs), "log:next"))
    data = second.body["data"]
    assert f"hits 2-2 of {total}" in data["embeds"][0]["footer"]["text"]
    (menu,) = [c for row in data["components"] for c in row["components"] if c["type"] == 3]
    assert [o["label"][:3] for o in menu["options"]] == ["2. "]

    # dan was in no call: no hits, and no menu.
    miss = _callback(await h.command("dan", "log", "search", query=word))
    assert "Nothing found" in _embed(miss)["description"] and not any(
        c["type"] == 3 for row in miss.message_data["components"] for c in row["components"]
    )
    empty = _reply(await h.command("ben", "log", "search", query="   "))
    assert empty.ephemeral and empty.message_data["content"] == "empty search: give a word or phrase to look for"


# -- export -----------------------------------------------------------------------------

SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"


def _srt_seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


async def test_export_attachments_parse_back(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)

    reqs = await h.command("cat", "log", "export", session=str(sid), format="srt")
    (sent,) = [r for r in reqs if r.path.startswith("/webhooks/") and r.files]
    assert sent.ephemeral and sent.body["allowed_mentions"] == {"parse": []}
    assert list(sent.files) == [f"s-talk-{sid}.srt"]
    srt = sent.files[f"s-talk-{sid}.srt"].decode("utf-8")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(detail.utterances)
    for n, (block, u) in enumerate(zip(blocks, detail.utterances), 1):
        index, times, text = block.split("\n")
        assert int(index) == n
        m = re.fullmatch(SRT_TIME + " --> " + SRT_TIME, times)
        assert m, times
        assert abs(_srt_seconds(*m.groups()[:4]) - u.start) < 0.001
        assert abs(_srt_seconds(*m.groups()[4:]) - u.end) < 0.001
        assert text == f"{u.speaker}: {u.text.strip()}"

    reqs = await h.command("ben", "log", "export", session=str(sid), format="json")
    (sent,) = [r for r in reqs if r.files]
    data = json.loads(sent.files[f"s-talk-{sid}.json"].decode("utf-8"))
    assert data["session"]["id"] == sid and data["session"]["title"] == "Weekly sync"
    assert [(u["speaker"], u["text"], u["start"]) for u in data["utterances"]] == [
        (u.speaker, u.text, round(u.start, 3)) for u in detail.utterances
    ]
    assert [u["verified"] for u in data["utterances"]] == [u.verification == "verified" for u in detail.utterances]

    for fmt, head in (("vtt", "WEBVTT\n"), ("md", "# Weekly sync"), ("txt", "Weekly sync")):
        reqs = await h.command("ben", "log", "export", session=str(sid), format=fmt)
        (sent,) = [r for r in reqs if r.files]
        text = sent.files[f"s-talk-{sid}.{fmt}"].decode("utf-8")
        assert text.startswith(head), text[:40]
        assert detail.utterances[0].text.strip()[:10] in text

    refused = _reply(await h.command("dan", "log", "export", session=str(sid), format="txt"))
    assert refused.ephemeral and not refused.files
    assert refused.message_data["content"] == f"There is no call #{sid} that you can see in this server."


# -- delete -----------------------------------------------------------------------------


async def test_delete_needs_the_starter_or_an_admin_and_a_confirmation(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    word = _word_of(detail.utterances[-1].text)

    # cat was in the call but did not start it; dan was not in it at all.
    cat = _reply(await h.command("cat", "log", "delete", session=str(sid)))
    assert cat.ephemeral and cat.message_data["content"] == (
        f"Only whoever started call #{sid} or a server administrator can delete it."
    )
    dan = _reply(await h.command("dan", "log", "delete", session=str(sid)))
    assert dan.message_data["content"] == f"There is no call #{sid} that you can see in this server."

    reqs = await h.command("ben", "log", "delete", session=str(sid))
    ask = _callback(reqs)
    assert ask.ephemeral and f"Delete call #{sid} for everyone" in ask.message_data["content"]
    assert set(_buttons(ask)) == {"log:delete", "log:keep"}
    assert get_session(h.db, sid) is not None  # nothing before the confirmation
    msg = _message_id(h, reqs)
    pressed = _callback(await h.click("cat", msg, "log:delete"))
    assert "Only the person who asked" in pressed.message_data["content"]
    assert get_session(h.db, sid) is not None

    done = await h.click("ben", msg, "log:delete")
    edit = [r for r in done if r.method == "PATCH" and r.path.endswith("/messages/@original")][-1]
    assert edit.body["content"].startswith(f"Deleted call #{sid} for good: {len(detail.utterances)} utterances")
    assert edit.body["components"] == []
    assert get_session(h.db, sid) is None
    assert search(h.db, Viewer.cli_operator(), word).total == 0
    gone = _embed(_reply(await h.command("ben", "log", "search", query=word)))
    assert "Nothing found" in gone["description"]


async def test_delete_cancel_and_admin_delete(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    reqs = await h.command("ben", "log", "delete", session=str(sid))
    kept = _callback(await h.click("ben", _message_id(h, reqs), "log:keep"))
    assert kept.body["data"]["content"] == "Nothing was deleted."
    assert get_session(h.db, sid) is not None

    # ann administers the guild: she may delete a call she neither started nor attended.
    reqs = await h.command("ann", "log", "delete", session=str(sid))
    done = await h.click("ann", _message_id(h, reqs), "log:delete")
    assert any(r.method == "PATCH" and "Deleted call" in (r.body or {}).get("content", "") for r in done)
    assert get_session(h.db, sid) is None


# -- guilds and autocomplete ------------------------------------------------------------


async def test_nobody_sees_another_guilds_calls(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    other = await h.add_guild(voice=False)
    _as_member_of(other, h, "ben")  # ben is in both guilds
    detail = get_session(h.db, sid)
    # The same conversation recorded in the other guild, ben in it and its starter.
    sid2 = copy_call(
        h.db,
        detail,
        guild=str(other.guild.id),
        title="Book club",
        started_by=str(h.users["ben"]),
        people={"alice": ("ben", str(h.users["ben"])), "bob": ("eve", str(snowflake()))},
    )

    here = await _autocomplete(h, "ben", "show", "")
    assert [c["value"] for c in here] == [str(sid)]
    assert here[0]["name"].startswith(f"#{sid} ") and "Weekly sync" in here[0]["name"]
    there = await _autocomplete(other, "ben", "export", "")
    assert [c["value"] for c in there] == [str(sid2)]
    assert await _autocomplete(h, "ben", "delete", "Book") == []
    assert [c["value"] for c in await _autocomplete(h, "ann", "show", "")] == [str(sid)]  # admin: this guild only
    assert await _autocomplete(h, "dan", "show", "") == []

    assert f"#{sid2}" not in _embed(_reply(await h.command("ben", "log", "list")))["description"]
    assert f"#{sid2}" not in _embed(_reply(await h.command("ann", "log", "list")))["description"]
    for user in ("ben", "ann"):
        refused = _reply(await h.command(user, "log", "show", session=str(sid2)))
        assert f"no call #{sid2}" in refused.message_data["content"]
        refused = _reply(await h.command(user, "log", "delete", session=str(sid2)))
        assert refused.message_data["content"] == f"There is no call #{sid2} that you can see in this server."
    word = _word_of(detail.utterances[-1].text)
    hits = _embed(_reply(await h.command("ben", "log", "search", query=word)))
    assert f"#{sid}**" in hits["description"] and f"#{sid2}**" not in hits["description"]
    hits = _embed(_reply(await other.command("ben", "log", "search", query=word)))
    assert f"#{sid2}**" in hits["description"] and f"#{sid}**" not in hits["description"]
    assert get_session(h.db, sid2) is not None


# -- /forget and retention --------------------------------------------------------------


async def test_forget_removes_the_users_utterances_and_search_hits(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    detail = get_session(h.db, sid)
    mine = [u for u in detail.utterances if u.speaker == "bob"]  # cat's
    theirs = [u for u in detail.utterances if u.speaker == "alice"]
    word = _word_of(max(mine, key=lambda u: len(u.text)).text)
    cat = Viewer.member(h.users["cat"], h.guild.id)
    assert search(h.db, cat, word).total >= 1

    reqs = await h.command("cat", "forget")
    assert "what you said in every stored call" in _callback(reqs).message_data["content"]
    done = await h.click("cat", _message_id(h, reqs), "forget:yes")
    edit = [r for r in done if r.method == "PATCH" and r.path.endswith("/messages/@original")][-1]
    # utterances + participant row (+ no voiceprints, no suggestions addressed only to cat)
    assert f"Deleted {len(mine) + 1} stored items" in edit.body["content"]
    assert "stopped listening" not in edit.body["content"]  # no session was running

    after = get_session(h.db, sid)
    assert [u.id for u in after.utterances] == [u.id for u in theirs]
    assert search(h.db, Viewer.cli_operator(), word).total == sum(word in u.text.lower() for u in theirs)
    assert "Nothing found" in _embed(_reply(await h.command("cat", "log", "search", query=word)))["description"]
    assert "No stored calls" in _embed(_reply(await h.command("cat", "log", "list")))["description"]


async def test_retention_worker_purges_at_start_when_configured(make_bot, english_call, tmp_path) -> None:
    db_path = tmp_path / "calls.db"
    shutil.copyfile(english_call, db_path)
    from storage.db import open_database

    with open_database(str(db_path)) as db, db.session() as s, s.begin():
        s.execute(update(CallSession).values(started_at=utcnow() - timedelta(days=40)))
    h = await make_bot(db_path=db_path, env={"STALK_RETENTION_MAX_AGE_DAYS": "30"})
    worker = h.bot.retention
    assert worker is not None and worker.running and worker.max_age_days == 30
    assert worker.every_s == h.bot.config.retention.check_hours * 3600

    def count() -> int:
        with h.db.session() as s:
            return len(list(s.scalars(select(CallSession.id))))

    for _ in range(200):  # the first purge runs as the worker starts
        if count() == 0:
            break
        await asyncio.sleep(0.05)
    assert count() == 0
    await h.bot.close()
    assert not worker.running


async def test_no_retention_worker_when_calls_are_kept_forever(make_bot, english_call, tmp_path) -> None:
    h, sid = await _bot(make_bot, english_call, tmp_path)
    assert h.bot.retention is None
    assert get_session(h.db, sid) is not None


@pytest.mark.slow
async def test_forget_during_a_session_stops_listening_first(make_bot, caplog) -> None:
    """Ben speaks, then uses /forget while the session runs and his utterance may still be in
    flight: the session stops listening to him at once, what he said is gone, nothing of his
    is stored afterwards and the session still ends cleanly with Ann's speech."""
    import logging

    from tests.bot.test_sessions import ANN_FILE, BEN_FILE, _speak, _text
    from tests.calls import librispeech_refs, wer
    from tests.voice.double import encode, load_speech

    h = await make_bot(voice=True)
    ben = h.users["ben"]
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    await h.server.wait_session()
    # The last packet goes out and /forget follows at once: his utterance has not even ended.
    await h.server.stream(ben, encode(load_speech(BEN_FILE)))
    with caplog.at_level(logging.INFO):
        reqs = await h.command("ben", "forget")
        done = await h.click("ben", _message_id(h, reqs), "forget:yes")
        edit = [r for r in done if r.method == "PATCH" and r.path.endswith("/messages/@original")][-1]
        assert f"stopped listening to you in <#{h.voice.id}>" in edit.body["content"]
        assert ben in session.excluded()
        before = session.vc.receive_stats()[ben].dropped_opted_out
        await _speak(h, "ben", BEN_FILE)  # ignored from now on
        await _speak(h, "ann", ANN_FILE)
        stats = session.vc.receive_stats()
        sid = session.session_id
        await h.command("ann", "leave")

    assert stats[ben].dropped_opted_out > before
    detail = get_session(h.db, sid)
    assert detail.status == "completed" and detail.error is None
    assert detail.started_by == str(h.users["ann"])  # who used /join: they may /log delete it
    assert {p.name for p in detail.participants} == {"Ann"}
    assert not any(u.speaker == "Ben" for u in detail.utterances)
    at_most(
        "bot.ann_speech_wer",
        wer([librispeech_refs()[ANN_FILE.stem]], [_text(detail, "Ann")]),
        0.5,
        (detail, [r.getMessage() for r in caplog.records]),
    )
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == []
    assert session.summary is not None and session.summary.unsaved_file is None
