"""enroll / verify / voiceprint on the command line: real recordings, a real SQLite file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import update

from storage import open_database
from storage.models import Voiceprint
from storage.voiceprints import get_voiceprint, list_voiceprints
from tests.calls import librispeech_files, shared, write_wav
from tests.cli import one_error_line, run_cli

pytestmark = pytest.mark.usefixtures("speaker_env")


def _files(spk: str, *idx: int) -> list[str]:
    files = librispeech_files(spk)
    return [str(files[i]) for i in idx]


def _enrol(capsys, db, name, files):
    code, out, err = run_cli(capsys, "enroll", "--db", db, name, *files)
    assert code == 0, err
    return out


@pytest.mark.slow
def test_enrol_verify_list_delete(tmp_path, capsys):
    db = str(tmp_path / "v.db")
    out = _enrol(capsys, db, "alice", _files("1688", 0, 1))
    assert out.startswith("enrolled alice: ") and "s of speech from 2 files" in out

    code, out, _ = run_cli(capsys, "verify", "--db", db, "alice", _files("1688", 7)[0])
    line = json.loads(out)
    assert code == 0 and line["verified"] is True and line["score"] >= line["threshold"] > 0

    code, out, _ = run_cli(capsys, "verify", "--db", db, "alice", _files("2414", 4)[0])
    line = json.loads(out)
    assert code == 1 and line["verified"] is False and line["score"] < line["threshold"]

    _enrol(capsys, db, "bob", _files("2414", 1, 2))
    code, out, _ = run_cli(capsys, "voiceprint", "list", "--db", db)
    assert [line.split()[0] for line in out.splitlines()] == ["alice", "bob"]

    # Re-enrolment replaces the voiceprint.
    with open_database(db) as d:
        before = get_voiceprint(d, "alice")
    out = _enrol(capsys, db, "alice", _files("1688", 5, 6, 7))
    assert out.startswith("re-enrolled alice")
    with open_database(db) as d:
        after = get_voiceprint(d, "alice")
        assert len(list_voiceprints(d)) == 2
    assert not np.allclose(before.embedding, after.embedding) and after.segments != before.segments

    code, out, _ = run_cli(capsys, "voiceprint", "delete", "--db", db, "alice")
    assert code == 0 and "deleted" in out
    with open_database(db) as d:
        assert [vp.name for vp in list_voiceprints(d)] == ["bob"]


def test_unknown_name(tmp_path, capsys):
    db = str(tmp_path / "v.db")
    _enrol(capsys, db, "bob", _files("2414", 1, 2))
    for argv in (("verify", "--db", db, "carol", _files("1688", 0)[0]), ("voiceprint", "delete", "--db", db, "carol")):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == ""
        assert "no voiceprint enrolled as 'carol'" in one_error_line(err) and "enrolled: bob" in err


@pytest.mark.slow
def test_failed_enrolment_keeps_the_old_voiceprint(tmp_path, capsys):
    db = str(tmp_path / "v.db")
    _enrol(capsys, db, "alice", _files("1688", 0, 1))
    with open_database(db) as d:
        before = get_voiceprint(d, "alice")
    cases = {
        "enrolment needs 10 s": _files("1688", 2),  # 2.8 s of speech
        "more than one voice": _files("1688", 0) + _files("2414", 2),
        "no such file": [str(tmp_path / "missing.wav")],
    }
    silent = write_wav(
        tmp_path / "hiss.wav", (np.random.default_rng(1).standard_normal(16000 * 12) * 3e-3).astype(np.float32)
    )
    cases["no speech heard"] = [str(silent)]
    for needle, files in cases.items():
        code, out, err = run_cli(capsys, "enroll", "--db", db, "alice", *files)
        assert code == 2 and out == "", needle
        line = one_error_line(err)
        assert needle in line.lower() or needle in line, line
    with open_database(db) as d:
        after = get_voiceprint(d, "alice")
    assert np.array_equal(before.embedding, after.embedding) and after.updated_at == before.updated_at


def test_refused_enrolment_creates_no_database(tmp_path, capsys):
    db = tmp_path / "new.db"
    code, _, err = run_cli(capsys, "enroll", "--db", str(db), "alice", *_files("1688", 2))
    assert code == 2 and "enrolment needs" in one_error_line(err)
    assert not db.exists()


def test_missing_and_wrong_models(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "v.db")
    monkeypatch.setenv("STALK_SPEAKER_MODEL", str(tmp_path / "nope.onnx"))
    code, _, err = run_cli(capsys, "enroll", "--db", db, "alice", *_files("1688", 0, 1))
    assert code == 2 and "speaker model" in one_error_line(err) and "not found" in err
    from bot.audio.vad import silero_model_path

    monkeypatch.setenv("STALK_SPEAKER_MODEL", silero_model_path())
    code, _, err = run_cli(capsys, "enroll", "--db", db, "alice", *_files("1688", 0, 1))
    assert code == 2 and "not a speaker-embedding model of the expected shape" in one_error_line(err)
    with open_database(db) as d:
        assert list_voiceprints(d) == []


def test_voiceprint_from_another_model_is_never_scored(tmp_path, capsys, speaker_env):
    db = str(tmp_path / "v.db")
    _enrol(capsys, db, "alice", _files("1688", 0, 1))
    with open_database(db) as d, d.write_session() as s, s.begin():
        s.execute(update(Voiceprint).values(model_id="f" * 64, model_name="voxceleb_resnet34_LM"))
    code, out, err = run_cli(capsys, "verify", "--db", db, "alice", _files("1688", 7)[0])
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "made with speaker model voxceleb_resnet34_LM" in line and "re-enrol alice" in line


def test_verify_needs_speech(tmp_path, capsys):
    db = str(tmp_path / "v.db")
    _enrol(capsys, db, "alice", _files("1688", 0, 1))
    digit = shared("data", "digits", "0_george_0.wav")
    code, out, err = run_cli(capsys, "verify", "--db", db, "alice", str(digit))
    assert code == 2 and out == "" and "too little to judge" in one_error_line(err)


@pytest.mark.slow
def test_bad_name_and_user_id(tmp_path, capsys):
    db = str(tmp_path / "v.db")
    code, out, err = run_cli(capsys, "enroll", "--db", db, "a=b", *_files("1688", 0, 1))
    assert code == 2 and "bad name" in one_error_line(err)
    code, _, err = run_cli(capsys, "enroll", "--db", db, "--user-id", "4242", "alice", *_files("1688", 0, 1))
    assert code == 0, err
    with open_database(db) as d:
        assert get_voiceprint(d, "alice").user_id == "4242"
    # Re-enrolling without --user-id keeps the link to the Discord account.
    _enrol(capsys, db, "alice", _files("1688", 5, 6, 7))
    with open_database(db) as d:
        assert get_voiceprint(d, "alice").user_id == "4242"
