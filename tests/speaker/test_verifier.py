"""The call verifier: binding participants by Discord user id or name, enrolment during a call."""

from __future__ import annotations

import pytest

from bot.speaker.enrollment import enroll
from bot.speaker.verifier import CallVerifier, VoiceprintModelMismatch, verifier_for_call
from storage import open_database
from storage.voiceprints import VoiceprintData, save_voiceprint
from tests.speaker.corpus import librispeech


@pytest.fixture(scope="module")
def prints(speaker_model, vad):
    ls = librispeech()
    return {
        spk: enroll(speaker_model, [u.audio for u in ls[spk][:3]], vad=vad, min_speech=8) for spk in ("1688", "2414")
    }


def test_bound_by_user_id_before_name(speaker_model, prints):
    ls = librispeech()
    alice = prints["1688"].voiceprint("alice", user_id="111")
    dave = prints["2414"].voiceprint("dave")
    v = CallVerifier(speaker_model, [alice, dave], min_seconds=1.0)
    assert v.bind("k1", "Ally (nickname)", user_id="111").name == "alice"
    assert v.bind("k2", "dave").name == "dave"
    assert v.bind("k3", "nobody") is None and not v.has_voiceprint("k3")
    e = v.embed(ls["1688"][6].audio)
    assert v.judge("k1", 0, 8, e).item.verdict.verification == "verified"
    assert v.judge("k2", 0, 8, e).item.verdict.verification == "mismatch"
    assert v.embed(ls["1688"][6].audio[:8000]) is None  # 0.5 s: too short to judge


def test_enrolment_during_the_call_takes_effect(speaker_model, prints):
    ls = librispeech()
    v = CallVerifier(speaker_model, [], min_seconds=1.0)
    v.bind("k", "alice", user_id="111")
    item = v.judge("k", 0, 6, v.embed(ls["1688"][7].audio)).item
    assert item.verdict.verification == "unknown"
    v.add_voiceprint(prints["1688"].voiceprint("alice", user_id="111"))
    later = v.judge("k", 10, 16, v.embed(ls["1688"][8].audio))
    assert later.item.verdict.verification == "verified"
    assert later.revised == [item] and item.verdict.verification == "verified"  # earlier speech judged too
    other = VoiceprintData("bob", "c" * 64, "other", prints["2414"].embedding, 3, 12.0)
    with pytest.raises(VoiceprintModelMismatch, match="re-enrol bob"):
        v.add_voiceprint(other)


def test_verifier_for_call_loads_only_when_someone_is_enrolled(tmp_path, config, speaker_model, prints):
    with open_database(str(tmp_path / "v.db")) as db:
        assert verifier_for_call(config, db, speaker_model) is None
        save_voiceprint(db, prints["1688"].voiceprint("alice"))
        save_voiceprint(db, VoiceprintData("old", "c" * 64, "other", prints["2414"].embedding, 3, 12.0))
        v = verifier_for_call(config, db, speaker_model)
        assert v is not None and v.threshold == pytest.approx(0.533)
        assert v.bind("k", "alice") is not None and v.bind("k2", "old") is None  # never across models
        assert verifier_for_call(config.replace("speaker", verify=False), db, speaker_model) is None
