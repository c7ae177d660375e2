"""A guest on one participant's mic, in a replayed call of real voices: flagged, owners not."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from bot.errors import StalkError
from bot.pipeline import PipelineListener
from bot.replay import Track, replay
from storage import get_session, open_database
from storage.queries import session_to_json
from storage.voiceprints import VoiceprintData, save_voiceprint
from tests.calls import build_call, librispeech_files, offline_config


class Segments(PipelineListener):
    def __init__(self):
        self.got = []

    def on_audio_segment(self, speaker, start, end, audio):
        self.got.append((speaker.name, start, end, audio))


@pytest.fixture(scope="module")
def guest_call(tmp_path_factory, tiny_en):
    """alice (1688) and bob (1998) enrolled; carol (2033), not enrolled, talks twice on alice's
    mic; dave (2414), enrolled, once on bob's."""
    from bot.speaker.enrollment import enroll
    from bot.speaker.model import SpeakerModel
    from tests.calls import load16k, shared

    tmp = tmp_path_factory.mktemp("guest")
    model = SpeakerModel(shared("models", "speaker", "campplus-zh-en-common.onnx"))
    A, B, C, D = (librispeech_files(s) for s in ("1688", "1998", "2033", "2414"))
    db_url = str(tmp / "call.db")
    with open_database(db_url) as db:
        for name, files in (("alice", A[:2]), ("bob", B[:2]), ("dave", D[1:3])):
            vp = enroll(model, [load16k(f) for f in files]).voiceprint(name)
            save_voiceprint(db, vp)
    script = [
        ("alice", A[2], "own"),
        ("bob", B[2], "own"),
        ("alice", A[3], "own"),
        ("alice", C[0], "guest"),
        ("alice", C[1], "guest"),
        ("bob", B[3], "own"),
        ("bob", D[4], "dave"),
        ("alice", A[4], "own"),
        ("bob", B[4], "own"),
        ("alice", A[5], "own"),
    ]
    paths, placed = build_call(tmp, script)
    out, segs = io.StringIO(), Segments()
    config = offline_config()
    summary = replay(
        config,
        [Track(n, str(p)) for n, p in paths.items()],
        db_url=db_url,
        speed=0,
        language="en",
        out=out,
        transcriber=tiny_en,
        speaker_model=model,
        listeners=[segs],
    )
    with open_database(db_url) as db:
        export = session_to_json(get_session(db, summary.session_id))
    return placed, export, out.getvalue(), segs


def _truth(placed, u):
    """Which placed file an utterance came from (by overlap)."""
    best = max(placed, key=lambda p: min(p.speech_end, u["end"]) - max(p.speech_start, u["start"]))
    return best.text


@pytest.mark.slow
def test_guest_flagged_owners_verified(guest_call):
    placed, export, printed, _ = guest_call
    utts = [u for u in export["utterances"] if u["end"] - u["start"] >= 2.0]
    assert len(utts) >= 8
    kinds = [_truth(placed, u) for u in utts]
    assert kinds.count("guest") >= 2 and kinds.count("dave") == 1 and kinds.count("own") >= 6
    for u in utts:
        kind = _truth(placed, u)
        if kind == "own":
            assert u["verification"] == "verified" and u["verified"] is True, u
            assert u["speaker_score"] > 0.5 and u["speaker_label"] is None
        elif kind == "guest":
            assert u["speaker"] == "alice" and u["verified"] is False and u["verification"] == "mismatch", u
            assert u["speaker_label"] == "guest on alice's mic"
        else:  # dave, enrolled, on bob's mic: named
            assert u["speaker"] == "bob" and u["verified"] is False and u["speaker_label"] == "dave", u
    assert "NOT THEIR VOICE" in printed and "guest on alice's mic" in printed and "[voice ok" in printed
    assert "voice check" in printed, printed
    assert re.search(r"voice check alice: \d+ verified, [2-9] not their voice \([2-9] guest on alice's mic\)", printed)
    assert re.search(r"voice check bob: \d+ verified, ([1-9]) not their voice \(\1 dave\)", printed)


@pytest.mark.slow  # shares the module's replay of a real call through the real models
def test_short_utterances_are_unknown(guest_call):
    _, export, _, _ = guest_call
    for u in export["utterances"]:
        if u["end"] - u["start"] < 1.0:
            assert u["verification"] == "unknown" and u["verified"] is None and u["speaker_score"] is None


@pytest.mark.slow  # shares the module's replay of a real call through the real models
def test_every_accepted_segment_reaches_listeners(guest_call):
    _, export, _, segs = guest_call
    assert len(segs.got) >= len(export["utterances"])
    for _name, start, end, audio in segs.got:
        assert audio.dtype == np.float32 and abs(len(audio) - (end - start) * 16000) <= 1
        assert float(np.abs(audio).max()) > 0.01
    spoken = {(u["speaker"], round(u["start"], 2)) for u in export["utterances"]}
    assert spoken <= {(n, round(s, 2)) for n, s, _, _ in segs.got}


def test_replay_refuses_a_voiceprint_of_another_model(tmp_path, tiny_en, speaker_model):

    db_url = str(tmp_path / "x.db")
    with open_database(db_url) as db:
        save_voiceprint(
            db, VoiceprintData("alice", "e" * 64, "other-model", np.ones(192, np.float32) / 192**0.5, 3, 12.0)
        )
    paths, _ = build_call(tmp_path, [("alice", librispeech_files("1688")[2], "")])
    with pytest.raises(StalkError, match="made with speaker model other-model"):
        replay(
            offline_config(),
            [Track("alice", str(paths["alice"]))],
            db_url=db_url,
            speed=0,
            language="en",
            out=io.StringIO(),
            transcriber=tiny_en,
            speaker_model=speaker_model,
        )
    with open_database(db_url) as db:
        from storage import list_sessions

        assert list_sessions(db) == []


class Verdicts(PipelineListener):
    def __init__(self):
        self.revised = []

    def on_verdict(self, speaker, utterance_id, start, end, verdict):
        self.revised.append((speaker.name, utterance_id, verdict))


@pytest.mark.slow
def test_a_later_utterance_revises_a_stored_verdict(tmp_path, tiny_en, speaker_model):
    """The owner's first words score low alone (1.4 s); their next utterance, same voice, revises
    the stored verdict to verified."""
    from bot.speaker.enrollment import enroll
    from tests.calls import load16k, write_wav

    files = librispeech_files("1688")
    db_url = str(tmp_path / "r.db")
    with open_database(db_url) as db:
        save_voiceprint(db, enroll(speaker_model, [load16k(f) for f in files[:3]], min_speech=8).voiceprint("alice"))
    weak = write_wav(tmp_path / "weak.wav", load16k(files[9])[:28000])
    paths, _ = build_call(tmp_path, [("alice", weak, ""), ("alice", files[5], "")], gap=2.0)
    listener = Verdicts()
    out = io.StringIO()
    summary = replay(
        offline_config(),
        [Track("alice", str(paths["alice"]))],
        db_url=db_url,
        speed=0,
        language="en",
        out=out,
        transcriber=tiny_en,
        speaker_model=speaker_model,
        listeners=[listener],
    )
    with open_database(db_url) as db:
        utts = session_to_json(get_session(db, summary.session_id))["utterances"]
    assert len(utts) == 2 and all(u["verification"] == "verified" for u in utts), [
        (u["start"], u["end"], u["speaker_score"], u["verification"]) for u in utts
    ]
    assert utts[0]["speaker_score"] < 0.533  # verified on its neighbour's evidence, not its own score
    assert [(n, v.verification) for n, _, v in listener.revised] == [("alice", "verified")]
    assert "verdict revised:  [voice ok" in out.getvalue()


@pytest.mark.slow
def test_enrolment_from_live_speech(tmp_path, tiny_en, speaker_model):
    """/enroll in a call: bob's segments are collected as the pipeline accepts them; the voiceprint
    made from them verifies bob's other recordings and not alice's."""
    from bot.live_enrollment import LiveEnrollment
    from bot.speaker.enrollment import EnrollmentError
    from tests.calls import load16k

    B, A = librispeech_files("1998"), librispeech_files("1688")
    paths, _ = build_call(tmp_path, [("bob", B[1], ""), ("alice", A[2], ""), ("bob", B[2], ""), ("bob", B[3], "")])
    progress = []
    live = LiveEnrollment(speaker_model, "bob", needed=10.0, on_progress=lambda s, n: progress.append((s, n)))
    too_early = LiveEnrollment(speaker_model, "alice", needed=10.0)
    replay(
        offline_config(),
        [Track(n, str(p)) for n, p in paths.items()],
        db_url=str(tmp_path / "l.db"),
        speed=0,
        language="en",
        out=io.StringIO(),
        transcriber=tiny_en,
        listeners=[live, too_early],
    )
    assert live.enough and progress[-1][0] == live.speech_seconds >= 10.0 and progress[-1][1] == 10.0
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)
    result = live.finish()
    assert result.speech_seconds >= 10.0
    assert speaker_model.embed(load16k(B[6])) @ result.embedding > 0.6
    assert speaker_model.embed(load16k(A[6])) @ result.embedding < 0.3
    with pytest.raises(EnrollmentError) as err:  # alice said 2.8 s only
        too_early.finish()
    assert err.value.gate == "too_little_speech"
