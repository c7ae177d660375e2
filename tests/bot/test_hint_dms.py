"""Hint DMs in live sessions: real speech through the voice-server double (real handshake,
DAVE, Opus) into the bot's session, a lull, and the topic suggestions sent by DM through the
Discord REST stand-in to those present and opted in (/hints on); a closed DM (403, code
50007) does not stop the others; suggestions stored with who they reached; the engine closed
at /leave. Also /forget during a call taking the voiceprint out of the running verifier.
Speech: LibriSpeech test-other (CC BY 4.0)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.discordbot.dm import DirectMessenger
from bot.discordbot.hintdms import DmDelivery, hint_text
from bot.hints import Hint, HintEngine, Recipient
from storage import get_session
from storage.plaintext import has_link, has_mention
from tests.hints.servers import ScriptedServer
from tests.voice.double import encode, librispeech, load_speech

ANN_FILE = librispeech("1688", 2)  # 2.8 s
BEN_FILE = librispeech("2033", 4)  # 4.3 s

# Short calls: two turns make a conversation, three seconds of silence a lull.
LULL_ENV = {"STALK_HINTS_LULL_SECONDS": "3", "STALK_HINTS_MIN_TURNS": "2", "STALK_HINTS_PREPARE_INTERVAL_SECONDS": "0"}


# How the scripted server's "varied" mode phrases its questions on the latest words.
VARIED = ("What else do you remember about the", "How did the", "Would you talk more about the")


@pytest.fixture(scope="module")
def scripted():
    """A local OpenAI-compatible server (tests/hints/servers.py): mode varied-0 answers at once
    with questions on the words of the latest lines."""
    server = ScriptedServer()
    yield server
    server.close()


async def _speak(h, who: str, packets) -> None:
    await h.server.stream(h.users[who], packets)
    await asyncio.sleep(0.8)


def _dms(h, user: str) -> list:
    """Messages the bot posted into ``user``'s DM channel (refused ones included)."""
    uid = h.users[user]
    return [
        r
        for r in h.rest.where("POST", "/messages")
        if r.path.startswith("/channels/") and h.rest.dm_channels.get(r.path.split("/")[2]) == uid
    ]


def _engine(session) -> HintEngine:
    (engine,) = [x for x in session.attachments.listeners if isinstance(x, HintEngine)]
    return engine


async def _call_with_a_lull(h) -> tuple[object, HintEngine]:
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    engine = _engine(session)
    assert engine in session.pipeline.listeners and engine.session_id == session.session_id
    # Encoded beforehand: the turn gap is the pause between them, not the encoding time.
    ann_speech, ben_speech = encode(load_speech(ANN_FILE)), encode(load_speech(BEN_FILE))
    await h.server.wait_session()
    await _speak(h, "ann", ann_speech)
    await _speak(h, "ben", ben_speech)
    # Then nobody speaks: the lull is declared the configured lull seconds after Ben's speech ended.
    try:
        await asyncio.wait_for(_delivered(engine), 60)  # a guard against a hang; live it takes about 3 s
    except TimeoutError:
        pytest.fail(f"no hint: speech {list(engine.state._stretches)}, declined silence {engine.detector._declined}")
    return session, engine


async def _delivered(engine: HintEngine) -> None:
    while not engine.stats.delivered:
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_the_opted_in_user_gets_suggestions_by_dm_at_a_lull(make_bot, scripted) -> None:
    # The model is asked once Ben's words are transcribed; on a slow or busy CPU that can take
    # longer than the 3 s lull, so this test waits 8 s for its lull.
    h = await make_bot(
        voice=True,
        env={
            **LULL_ENV,
            "STALK_HINTS_LULL_SECONDS": "8",
            "STALK_LLM_BASE_URL": scripted.url("varied-0"),
            "STALK_LLM_MODEL": "scripted",
        },
    )
    ann, ben = h.users["ann"], h.users["ben"]
    await h.command("ann", "hints", state="on")  # Ben never turned hints on

    session, engine = await _call_with_a_lull(h)
    (done,) = engine.stats.delivered
    assert [r.recipient.key for r in done.results] == [str(ann)] and all(r.ok for r in done.results)
    (dm,) = _dms(h, "ann")
    assert _dms(h, "ben") == [] and not any(
        r.body == {"recipient_id": ben} for r in h.rest.where("POST", "/users/@me/channels")
    )
    assert dm.body["allowed_mentions"] == {"parse": []} and len(dm.content) <= 2000
    head, *items, blank, foot = dm.content.split("\n")
    assert f"**call** in guild {h.guild.id % 1000}" in head and "gone quiet" in head
    assert items == [f"- {t}" for t in done.hint.texts] and 1 <= len(items) <= 3
    assert blank == "" and "/hints off" in foot
    assert scripted.count("varied-0") >= 1  # the model was asked while they talked

    sid = session.session_id
    assert engine.running  # a live session: the wall-clock lull checker runs
    await h.command("ann", "leave")
    # The engine stopped with the session: its lull checker and preparer threads are gone.
    assert not engine.running

    stored = get_session(h.db, sid).suggestions
    assert [g.text for g in stored] == list(done.hint.texts)
    assert all(g.recipients == ["Ann"] and g.at > 0 for g in stored)
    # Each text is the model's (sources 'scripted') or the built-in fallback's, as stored.
    assert [g.source for g in stored] == list(done.hint.sources)
    model = [g.text for g in stored if g.source == "scripted"]
    assert model, [(g.source, g.text) for g in stored]  # the server answered long before the lull
    assert all(t.startswith(VARIED) for t in model), model


@pytest.mark.slow
async def test_a_closed_dm_does_not_stop_the_others(make_bot, caplog) -> None:
    """No model at all (built-in suggestions); Ann's DMs are closed, Ben still gets his."""
    h = await make_bot(voice=True, env={**LULL_ENV, "STALK_LLM_ENABLED": "false"})
    ann = h.users["ann"]
    await h.command("ann", "hints", state="on")
    await h.command("ben", "hints", state="on")
    h.rest.closed_dms.add(ann)

    with caplog.at_level(logging.WARNING, logger="bot.discordbot.hintdms"):
        session, engine = await _call_with_a_lull(h)
    (done,) = engine.stats.delivered
    by_user = {r.recipient.name: r for r in done.results}
    assert set(by_user) == {"Ann", "Ben"}
    assert not by_user["Ann"].ok and by_user["Ann"].error == "DMs closed" and by_user["Ben"].ok
    (refused,) = _dms(h, "ann")  # tried once, refused by Discord
    (sent,) = _dms(h, "ben")
    assert refused.content == sent.content and "- " in sent.content
    assert [m for m in caplog.messages if "not sent: DMs closed" in m] == [
        f"hint DM to Ann ({ann}) not sent: DMs closed"
    ]

    sid = session.session_id
    await h.command("ann", "leave")
    stored = get_session(h.db, sid).suggestions
    assert stored and all(g.recipients == ["Ben"] and g.source == "fallback" for g in stored)
    assert [g.text for g in stored] == list(done.hint.texts)


async def test_dm_delivery_logs_a_closed_dm_once_and_bounds_the_message(make_bot, caplog) -> None:
    h = await make_bot()
    ann, ben = h.users["ann"], h.users["ben"]
    h.rest.closed_dms.add(ann)
    delivery = DmDelivery(DirectMessenger(h.bot), guild="Fish *&* chips", channel="@everyone lounge")
    texts = tuple(f"Suggestion {i}: " + "x" * 400 for i in range(8))  # longer than one DM in all
    hint = Hint(
        at=12.5,
        texts=texts,
        sources=("fallback",) * 8,
        language="en",
        recipients=(Recipient(str(ann), "Ann", str(ann)), Recipient(str(ben), "Ben", str(ben))),
        lull_start=8.0,
        detected_at=12.0,
    )
    with caplog.at_level(logging.DEBUG, logger="bot.discordbot.hintdms"):
        first = await asyncio.to_thread(delivery.deliver, hint)
        second = await asyncio.to_thread(delivery.deliver, hint)
    for results in (first, second):
        assert [(r.recipient.name, r.ok, r.error) for r in results] == [
            ("Ann", False, "DMs closed"),
            ("Ben", True, None),
        ]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "DMs closed" in r.getMessage()]
    assert len(warned) == 1  # once per user per session, not at every lull
    sent = _dms(h, "ben")
    assert len(sent) == 2 and all(len(r.content) <= 2000 and r.body["allowed_mentions"] == {"parse": []} for r in sent)
    text = sent[0].content
    assert (
        "**＠everyone lounge** in Fish \\*&\\* chips" in text
    )  # '@' made inert: no mention, ever and text.endswith("`/hints off` stops these messages.")
    assert text.count("\n- Suggestion ") == 4  # as many whole suggestions as fit, none cut


def test_hint_text_lists_the_suggestions() -> None:
    hint = Hint(
        at=3.0,
        texts=("What was the best part of the trip?", "Who else went sailing?"),
        sources=("m", "m"),
        language="en",
        recipients=(),
        lull_start=0.0,
        detected_at=2.0,
    )
    assert hint_text(hint, guild="Friends", channel="Lobby").split("\n") == [
        "Your call in **Lobby** in Friends has gone quiet. A few things you could bring up:",
        "- What was the best part of the trip?",
        "- Who else went sailing?",
        "",
        "-# Only you see this. `/hints off` stops these messages.",
    ]


async def test_hints_off_in_config_attaches_no_engine(make_bot) -> None:
    h = await make_bot(voice=True, env={"STALK_HINTS_ENABLED": "false"})
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    assert not any(isinstance(x, HintEngine) for x in session.pipeline.listeners)
    await h.server.wait_session()
    await h.command("ann", "leave")


async def test_forget_during_a_call_removes_the_voiceprint_from_the_running_verifier(make_bot) -> None:
    """The running session's verifier holds a loaded copy of Ann's voiceprint: /forget takes it
    out (the way /voiceprint delete does), as well as deleting the stored one."""
    from bot.speaker.enrollment import enroll
    from bot.speaker.model import SpeakerModel
    from storage.voiceprints import list_voiceprints, save_voiceprint
    from tests.bot.test_enroll import CAMPPLUS
    from tests.calls import load16k

    h = await make_bot(voice=True, env={"STALK_SPEAKER_MODEL": CAMPPLUS})
    ann = h.users["ann"]
    result = enroll(SpeakerModel(CAMPPLUS), [load16k(librispeech("1998", i)) for i in (1, 2)])
    save_voiceprint(h.db, result.voiceprint("ann-from-files", str(ann)))
    await h.command("ann", "join")
    verifier = h.bot.sessions.get(h.guild.id).pipeline.verifier
    # Nobody has spoken yet: the copy is loaded, not yet bound to a stream.
    assert verifier is not None and "ann-from-files" in verifier.enrolled
    await h.server.wait_session()

    await h.command("ann", "forget")
    callback = [r for r in h.rest.requests if r.path.endswith("/callback")][-1]
    reqs = await h.click("ann", h.rest.last_callback_message_id[callback.path], "forget:yes")
    edit = [r for r in reqs if r.path.startswith("/webhooks/")][-1]
    assert edit.body["content"].startswith("Deleted ") and "stopped listening to you" in edit.body["content"]
    assert "ann-from-files" not in verifier.enrolled and list_voiceprints(h.db) == []
    await h.command("ann", "leave")


@pytest.mark.slow
async def test_a_hostile_model_puts_no_link_or_mention_into_a_hint_dm(make_bot, scripted) -> None:
    """The model answers with questions on what was said, each carrying a link in some
    spelling (split, defanged, fullwidth, masked ...): what reaches the DM links nowhere."""
    h = await make_bot(
        voice=True, env={**LULL_ENV, "STALK_LLM_BASE_URL": scripted.url("hostile"), "STALK_LLM_MODEL": "scripted"}
    )
    await h.command("ann", "hints", state="on")
    session, engine = await _call_with_a_lull(h)
    (done,) = engine.stats.delivered
    assert scripted.count("hostile") >= 1  # the model was asked and answered
    assert done.hint.texts and not any(has_link(t) or has_mention(t) for t in done.hint.texts)
    (dm,) = _dms(h, "ann")
    assert not has_link(dm.content) and not has_mention(dm.content), dm.content
    await h.command("ann", "leave")
    stored = get_session(h.db, session.session_id).suggestions
    assert stored and not any(has_link(g.text) for g in stored)
