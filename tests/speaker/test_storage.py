"""Voiceprints and verdicts in a real SQLite file."""

from __future__ import annotations

import numpy as np
import pytest

from storage import CallRecorder, NewSession, UtteranceRecord, get_session, open_database
from storage.queries import session_to_json
from storage.voiceprints import (
    VoiceprintData,
    delete_voiceprint,
    get_voiceprint,
    get_voiceprint_by_user,
    list_voiceprints,
    save_voiceprint,
)


def _vp(name, model_id="a" * 64, seed=0, user_id=None):
    e = np.random.default_rng(seed).standard_normal(192).astype(np.float32)
    return VoiceprintData(name, model_id, "m", e / np.linalg.norm(e), 4, 15.5, user_id, {"piece_seconds": 4.0})


def test_voiceprints_round_trip_replace_and_delete(tmp_path):
    with open_database(str(tmp_path / "v.db")) as db:
        save_voiceprint(db, _vp("alice", seed=1, user_id="123"))
        save_voiceprint(db, _vp("bob", model_id="b" * 64, seed=2))
        got = get_voiceprint(db, "alice")
        assert np.array_equal(got.embedding, _vp("alice", seed=1).embedding) and got.embedding.dtype == np.float32
        assert (got.segments, got.speech_seconds, got.user_id, got.scoring) == (4, 15.5, "123", {"piece_seconds": 4.0})
        assert get_voiceprint_by_user(db, "123").name == "alice"
        assert [v.name for v in list_voiceprints(db, "a" * 64)] == ["alice"]
        created = got.created_at
        save_voiceprint(db, _vp("alice", seed=3))
        again = get_voiceprint(db, "alice")
        assert np.array_equal(again.embedding, _vp("alice", seed=3).embedding)
        assert again.created_at == created and again.updated_at >= created
        assert len(list_voiceprints(db)) == 2
        assert delete_voiceprint(db, "alice") and not delete_voiceprint(db, "alice")
        assert get_voiceprint(db, "alice") is None


def test_verdicts_are_stored_revised_and_exported(tmp_path):
    with open_database(str(tmp_path / "v.db")) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="replay", title="t"))
        pid = rec.add_participant(sid, "alice")
        uid = rec.add_utterance(
            UtteranceRecord(
                session_id=sid,
                participant_id=pid,
                start=1.0,
                end=3.0,
                transcribed_at=4.0,
                text="hello",
                speaker_score=0.31,
                verification="mismatch",
                speaker_label="guest on alice's mic",
            )
        )
        rec.add_utterance(
            UtteranceRecord(
                session_id=sid,
                participant_id=pid,
                start=4.0,
                end=4.5,
                transcribed_at=5.0,
                text="ok",
                verification="unknown",
            )
        )
        rec.finish_session(sid, "completed", duration=6.0)
        first, second = session_to_json(get_session(db, sid))["utterances"]
        assert (first["verified"], first["verification"], first["speaker_label"], first["speaker_score"]) == (
            False,
            "mismatch",
            "guest on alice's mic",
            0.31,
        )
        assert second["verified"] is None and second["verification"] == "unknown"
        rec.update_verification(uid, 0.31, "verified", None)
        first = session_to_json(get_session(db, sid))["utterances"][0]
        assert (first["verified"], first["verification"], first["speaker_label"]) == (True, "verified", None)
        with pytest.raises(ValueError, match="verification must be one of"):
            rec.update_verification(uid, 0.3, "maybe", None)
        with pytest.raises(ValueError, match="no utterance"):
            rec.update_verification(uid + 100, 0.3, "verified", None)
