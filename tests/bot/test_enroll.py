"""Voiceprints in the live bot: /enroll from real speech sent through the voice-server double
(real handshake, DAVE, Opus), the quality gates' advice, verdicts of a guest on someone's mic
in the stored and the live transcript, /voiceprint status and delete, and the doctor's speaker
model check. Voices: LibriSpeech test-other (CC BY 4.0), speaker model CAM++ from ../shared."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.speaker.enrollment import enroll
from bot.speaker.model import SpeakerModel
from storage import get_session
from storage.voiceprints import get_voiceprint_by_user, list_voiceprints, save_voiceprint
from tests.bot.test_doctor_and_run import _only_failure, healthy  # noqa: F401  (the fixture)
from tests.calls import load16k, shared
from tests.cli import run_cli
from tests.voice.double import encode, librispeech, load_speech

CAMPPLUS = str(shared("models", "speaker", "campplus-zh-en-common.onnx"))
OWNER = librispeech("1998", 0)  # 13.3 s, a woman reading: about 11.5 s of net speech
OWNER_AGAIN = librispeech("1998", 3)  # 7.2 s
GUEST = librispeech("2609", 5)  # 6.5 s, a man
SHORT = librispeech("1688", 2)  # 2.8 s
AFTER = librispeech("1998", 7)  # 3.2 s


def _env(**extra: str) -> dict[str, str]:
    return {"STALK_SPEAKER_MODEL": CAMPPLUS, **extra}


async def _speak(h, who: str, path) -> float:
    """Send ``path`` on ``who``'s stream; returns the call time it started at."""
    session = h.bot.sessions.get(h.guild.id)
    at = time.monotonic() - session.epoch
    await h.server.stream(h.users[who], encode(load_speech(path)))
    await asyncio.sleep(0.8)  # a pause that ends the utterance
    return at


def _edits(h, token: str) -> list[str]:
    return [r.content for r in h.rest.where("PATCH", f"/{token}/messages/@original")]


async def _final_edit(h, token: str, marker: str, timeout: float = 120) -> str:
    await h.rest.wait_for(lambda reqs: any(marker in (c or "") for c in _edits(h, token)), timeout=timeout)
    return _edits(h, token)[-1]


def _token(reqs) -> str:
    return [r for r in reqs if r.path.endswith("/callback")][0].path.split("/")[-2]


def _reply(reqs):
    followups = [r for r in reqs if r.path.startswith("/webhooks/")]
    return followups[-1] if followups else [r for r in reqs if r.path.endswith("/callback")][0]


@pytest.mark.slow
async def test_enroll_in_a_call_then_a_guest_on_that_mic_is_flagged(make_bot) -> None:
    h = await make_bot(voice=True, env=_env(STALK_DISCORD_LIVE_TRANSCRIPT="true"))
    ann = h.users["ann"]
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    await h.server.wait_session()
    assert session.pipeline.verifier is None  # nobody enrolled: no speaker model loaded for the call

    reqs = await h.command("ann", "enroll")
    first = _reply(reqs)
    assert first.ephemeral and "Read this aloud" in first.message_data["content"]
    assert "0.0 of 10 s" in first.message_data["content"]
    token = _token(reqs)
    await _speak(h, "ann", OWNER)
    done = await _final_edit(h, token, "Enrolled")
    assert "Your voiceprint is stored" in done and "/voiceprint delete" in done

    # Progress was shown while she spoke, rate-limited, rising.
    progress = [c for c in _edits(h, token) if "Heard so far" in c]
    heard = [float(c.split("Heard so far: **")[1].split(" of")[0]) for c in progress]
    assert heard and heard == sorted(heard) and 0 < heard[0] < 10
    assert len(progress) <= 13.3 / 2.5 + 2

    vp = get_voiceprint_by_user(h.db, str(ann))
    assert vp is not None and vp.name == "Ann" and vp.speech_seconds >= 10
    assert vp.model_id == SpeakerModel(CAMPPLUS).model_id
    assert session.pipeline.verifier is not None and session.pipeline.verifier.has_voiceprint(str(ann))

    # A guest speaks on Ann's account, then Ann herself.
    guest_at = await _speak(h, "ann", GUEST)
    owner_at = await _speak(h, "ann", OWNER_AGAIN)
    sid = session.session_id
    await h.command("ann", "leave")

    utts = [u for u in get_session(h.db, sid).utterances if u.speaker == "Ann"]
    guest = [u for u in utts if guest_at <= u.start < owner_at]
    owner = [u for u in utts if u.start >= owner_at]
    assert guest and all(u.verification == "mismatch" and u.speaker_label == "guest on Ann's mic" for u in guest), [
        (u.text, u.verification, u.speaker_label, u.speaker_score) for u in guest
    ]
    assert owner and all(u.verification == "verified" for u in owner), [
        (u.text, u.verification, u.speaker_score) for u in owner
    ]
    # The live transcript says so, worded like replay.
    posted = " ".join(r.content or "" for r in h.rest.where("POST", f"/channels/{h.voice.id}/messages"))
    assert "[not their voice: guest on Ann's mic]" in posted
    assert posted.count("not their voice") >= len(guest) >= 1

    # /voiceprint status, then delete after a confirmation.
    status = _reply(await h.command("ann", "voiceprint", "status"))
    text = status.message_data["content"]
    assert status.ephemeral and "Your voiceprint" in text and "campplus-zh-en-common" in text
    assert f"{vp.speech_seconds:.1f} s of speech" in text and "matches the speaker model in use" in text
    ask = _reply(await h.command("ann", "voiceprint", "delete"))
    assert "cannot be undone" in ask.message_data["content"]
    buttons = [c["custom_id"] for row in ask.message_data["components"] for c in row["components"]]
    assert buttons == ["voiceprint:delete", "voiceprint:keep"]
    assert get_voiceprint_by_user(h.db, str(ann)) is not None  # nothing deleted before the confirmation
    msg_id = h.rest.last_callback_message_id[[r.path for r in h.rest.where("POST", "/callback")][-1]]
    refused = await h.click("ben", msg_id, "voiceprint:delete")
    assert "Only the person" in refused[0].message_data["content"]
    assert get_voiceprint_by_user(h.db, str(ann)) is not None
    done = await h.click("ann", msg_id, "voiceprint:delete")
    assert "Your voiceprint is deleted" in done[0].body["data"]["content"]
    assert get_voiceprint_by_user(h.db, str(ann)) is None and list_voiceprints(h.db) == []
    none = _reply(await h.command("ann", "voiceprint", "status"))
    assert "You have no voiceprint" in none.message_data["content"]


@pytest.mark.slow
async def test_enroll_is_refused_or_gives_up_with_advice_and_stores_nothing(make_bot) -> None:
    h = await make_bot(voice=True, in_voice=("ann", "ben"), env=_env(STALK_SPEAKER_ENROLL_TIMEOUT_S="5"))
    no_session = _reply(await h.command("ann", "enroll"))
    assert "/join" in no_session.message_data["content"]
    await h.command("ann", "join")
    await h.server.wait_session()
    not_there = _reply(await h.command("cat", "enroll"))  # not in the voice channel
    assert not_there.ephemeral and "Join <#" in not_there.message_data["content"]
    await h.command("ben", "optout")
    opted_out = _reply(await h.command("ben", "enroll"))
    assert "You opted out" in opted_out.message_data["content"]

    reqs = await h.command("ann", "enroll")
    token = _token(reqs)
    await _speak(h, "ann", SHORT)
    text = await _final_edit(h, token, "Nothing was stored", timeout=60)
    assert text.startswith("Time is up. I heard ") and "enrolment needs 10 s" in text
    assert "read the whole text aloud" in text
    assert list_voiceprints(h.db) == []
    assert h.bot.sessions.get(h.guild.id).pipeline.verifier is None
    assert h.bot.get_cog("EnrollCog").enrolling == set()
    privacy = _reply(await h.command("dan", "privacy")).message_data["content"]
    assert "your voiceprint" in privacy and "`/voiceprint delete` or `/forget`" in privacy
    await h.command("ann", "leave")


@pytest.mark.slow
async def test_a_session_verifies_those_enrolled_before_it_started(make_bot) -> None:
    """Ann was enrolled from files (the command line, bound to her Discord id): the call binds
    her stream to that voiceprint from the start."""
    h = await make_bot(voice=True, env=_env())
    ann = h.users["ann"]
    model = SpeakerModel(CAMPPLUS)
    result = enroll(model, [load16k(librispeech("1998", i)) for i in (1, 2)])
    save_voiceprint(h.db, result.voiceprint("ann-from-files", str(ann)))

    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    await h.server.wait_session()
    owner_at = await _speak(h, "ann", OWNER_AGAIN)
    guest_at = await _speak(h, "ann", GUEST)
    verifier = session.pipeline.verifier
    assert verifier is not None and verifier.has_voiceprint(str(ann))
    sid = session.session_id
    await asyncio.sleep(0.5)
    await asyncio.to_thread(session.pipeline.pool.drain, 60)  # what was said so far is stored

    # She deletes her voiceprint during the call: from then on her speech is not judged, and
    # the verdicts already given stay as they were.
    await h.command("ann", "voiceprint", "delete")
    callback = [r for r in h.rest.requests if r.path.endswith("/callback")][-1]
    await h.click("ann", h.rest.last_callback_message_id[callback.path], "voiceprint:delete")
    assert list_voiceprints(h.db) == [] and not verifier.has_voiceprint(str(ann))
    after_at = await _speak(h, "ann", AFTER)
    await h.command("ann", "leave")

    utts = [u for u in get_session(h.db, sid).utterances if u.speaker == "Ann"]
    owner = [u for u in utts if owner_at <= u.start < guest_at]
    guest = [u for u in utts if guest_at <= u.start < after_at]
    after = [u for u in utts if u.start >= after_at]
    assert owner and all(u.verification == "verified" for u in owner), [(u.text, u.speaker_score) for u in owner]
    assert guest and all(u.verification == "mismatch" and u.speaker_label == "guest on Ann's mic" for u in guest)
    assert after and all(u.verification == "unknown" and u.speaker_score is None for u in after)


def test_doctor_speaker_model_missing(healthy, capsys, monkeypatch, tmp_path) -> None:  # noqa: F811
    monkeypatch.setenv("STALK_SPEAKER_MODEL", str(tmp_path / "nowhere.onnx"))
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "speaker model")
    assert code == 1 and "nowhere.onnx" in line and "not found" in line and "speaker.model" in fix


def test_doctor_speaker_model_of_the_wrong_shape(healthy, capsys, monkeypatch) -> None:  # noqa: F811
    from pathlib import Path

    import faster_whisper

    vad = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"  # an ONNX model, not a speaker's
    monkeypatch.setenv("STALK_SPEAKER_MODEL", str(vad))
    code, out, _ = run_cli(capsys, "doctor", "--db", str(healthy))
    line, fix = _only_failure(out, "speaker model")
    assert code == 1 and "expected shape" in line and "WeSpeaker" in fix


@pytest.mark.parametrize("gate", ["silent", "quiet", "clipped", "too_little_speech", "several_voices"])
def test_every_gate_has_advice(gate) -> None:
    from bot.speaker.enrollment import EnrollmentError
    from cogs.enroll import GATE_HELP, failure_text

    text = failure_text(EnrollmentError(gate, "what the gate found"), timed_out=False, seconds=3.0, needed=10.0)
    assert GATE_HELP[gate] in text and text.endswith("Nothing was stored. (Details: what the gate found.)")


async def test_enroll_after_forget_is_refused_at_once(make_bot) -> None:
    """/forget in a call means S-Talk ignores you for the rest of it. /enroll uses the session's
    one "is this user processed?" rule, so it says so at once instead of listening until its
    timeout and then saying it did not hear you."""
    from bot.live_enrollment import LiveEnrollment

    h = await make_bot(voice=True)
    await h.command("ann", "join")
    await h.server.wait_session()
    await h.command("ben", "forget")
    callback = [r for r in h.rest.requests if r.path.endswith("/callback")][-1]
    await h.click("ben", h.rest.last_callback_message_id[callback.path], "forget:yes")
    session = h.bot.sessions.get(h.guild.id)
    assert not session.is_processed(h.users["ben"]) and session.is_processed(h.users["ann"])

    reply = _reply(await h.command("ben", "enroll"))
    content = reply.message_data["content"]
    assert reply.ephemeral and "You used /forget" in content and "Read this aloud" not in content
    assert h.bot.get_cog("EnrollCog").enrolling == set()
    assert not any(isinstance(x, LiveEnrollment) for x in session.pipeline.listeners)
    await h.command("ann", "leave")
