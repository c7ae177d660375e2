"""Every value a user can type, checked where it comes in (issue 13, "bad values that crash or
lie"): one ``error:`` line, exit status 2, nothing stored, no traceback.

Through ``bot.cli.main`` as a user would; the model-loading cases use the offline tiny.en.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

import bot.cli
from tests.calls import tiny_en_dir
from tests.cli import one_error_line, run_cli

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STALK_SHARED_DIR", REPO.parent / "shared"))
JFK = SHARED / "data" / "misc" / "jfk.flac"
HUGE = "99999999999999999999"  # beyond SQLite's signed 64-bit integers


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("STALK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STALK_ASR_MODEL", tiny_en_dir())
    monkeypatch.setenv("STALK_ASR_WORKERS", "1")
    monkeypatch.setenv("STALK_STORAGE_URL", str(tmp_path / "env.db"))


def usage_error(capsys, *argv: str) -> str:
    """The one line of an argparse refusal (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        bot.cli.main(list(argv))
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return one_error_line(err)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nan", "'nan' is not a finite number"),
        ("inf", "'inf' is not a finite number"),
        ("-inf", "'-inf' is not a finite number"),
        ("1e-300", "1e-300 is out of range: 0 (as fast as possible), or from 0.01 to 1000"),
        ("-1", "-1 is out of range"),
        ("1e9", "1e9 is out of range"),
        ("fast", "'fast' is not a number"),
    ],
)
def test_replay_speed(capsys, tmp_path, value: str, expected: str) -> None:
    db = tmp_path / "calls.db"
    line = usage_error(capsys, "replay", f"--speed={value}", "--db", str(db), f"a={JFK}")
    assert f"argument --speed: {expected}" in line
    assert not db.exists()


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A database with one finished call."""
    from storage import open_database
    from storage.recorder import CallRecorder
    from storage.records import NewSession

    path = tmp_path / "calls.db"
    with open_database(str(path)) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="replay", title="one"))
        rec.finish_session(sid, "completed", duration=1.0)
    return path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["logs", "show", HUGE], f"argument ID: {HUGE} is out of range: a session id is from 1 to 9223372036854775807"),
        (["logs", "show", "0"], "argument ID: 0 is out of range"),
        (["logs", "show", "-5"], "argument ID: -5 is out of range"),
        (["logs", "show", "12abc"], "argument ID: '12abc' is not a whole number"),
        (["logs", "export", HUGE], "argument ID: 99999999999999999999 is out of range"),
        (["logs", "delete", HUGE, "--yes"], "argument ID: 99999999999999999999 is out of range"),
        (["logs", "close", HUGE], "argument ID: 99999999999999999999 is out of range"),
        (["logs", "list", "--limit", HUGE], "argument --limit: 99999999999999999999 is out of range"),
        (["logs", "list", "--limit", "0"], "argument --limit: 0 is out of range"),
        (["logs", "search", "x", "--context", HUGE], "argument --context: 99999999999999999999 is out of range"),
        (["logs", "search", "x", "--page", HUGE], "argument --page: 99999999999999999999 is out of range"),
        (["logs", "search", "x", "--session", HUGE], "argument --session: 99999999999999999999 is out of range"),
        (["logs", "purge", "--older-than", "1e9", "--yes"], "argument --older-than: 1e9 is out of range"),
        (["logs", "purge", "--older-than", "1000000", "--yes"], "argument --older-than: 1000000 is out of range"),
        (["logs", "purge", "--older-than", "nan", "--yes"], "argument --older-than: 'nan' is not a finite number"),
        (["logs", "purge", "--older-than", "inf", "--yes"], "argument --older-than: 'inf' is not a finite number"),
        (["logs", "purge", "--older-than", "0", "--yes"], "a number of days above 0, at most 36500"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_logs_numbers(capsys, stored: Path, argv: list[str], expected: str) -> None:
    before = stored.read_bytes()
    line = usage_error(capsys, *argv, "--db", str(stored))
    assert expected in line, line
    assert stored.read_bytes() == before


def test_the_largest_session_id_is_just_not_found(capsys, stored: Path) -> None:
    code, out, err = run_cli(capsys, "logs", "show", str(2**63 - 1), "--db", str(stored))
    assert code == 2 and f"no session {2**63 - 1} in" in one_error_line(err)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["enroll", "a\x1b]0;owned\x07", str(JFK)], "bad name 'a\\x1b]0;owned\\x07': it holds control"),
        (["enroll", "x" * 101, str(JFK)], "101 characters"),
        (["verify", "b\u2060ob", str(JFK)], "bad name 'b\\u2060ob': it holds control or invisible characters"),
        (["voiceprint", "delete", "a\nb"], "bad name 'a\\nb'"),
    ],
)
def test_voiceprint_names(capsys, tmp_path, argv: list[str], expected: str) -> None:
    code, out, err = run_cli(capsys, *argv, "--db", str(tmp_path / "calls.db"))
    line = one_error_line(err)
    assert code == 2 and expected in line, line
    assert not (tmp_path / "calls.db").exists()


def test_enroll_user_id_must_be_a_snowflake(capsys, tmp_path) -> None:
    line = usage_error(capsys, "enroll", "ann", str(JFK), "--user-id", "12; DROP", "--db", str(tmp_path / "x.db"))
    assert "argument --user-id: '12; DROP' is not a Discord user id" in line


def test_a_config_that_is_not_toml_is_refused_even_with_db(capsys, stored: Path, tmp_path: Path) -> None:
    broken = tmp_path / "s-talk.toml"
    broken.write_text("[retention\nmax_age_days = ", encoding="utf-8")
    for argv in (["logs", "list"], ["logs", "show", "1"], ["logs", "purge", "--older-than", "7", "--yes"]):
        code, out, err = run_cli(capsys, *argv, "--config", str(broken), "--db", str(stored))
        assert code == 2 and f"configuration file {broken} is not valid TOML" in one_error_line(err), argv


@pytest.mark.parametrize(
    ("env", "expected", "fix"),
    [
        ({"STALK_ASR_DEVICE": "cuda"}, "asr.device is cuda, but this machine has no CUDA GPU", "set asr.device = cpu"),
        (
            {"STALK_ASR_COMPUTE_TYPE": "float16"},
            "asr.compute_type float16 is not supported on cpu here",
            "use one of float32, int16, int8, int8_float32",
        ),
    ],
    ids=["cuda", "float16"],
)
def test_device_and_compute_type_this_machine_lacks(capsys, monkeypatch, tmp_path, env, expected, fix) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("this machine has a CUDA GPU: the refusal is for machines without one")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db = tmp_path / "calls.db"
    code, out, err = run_cli(capsys, "replay", "--speed", "0", "--db", str(db), f"a={JFK}")
    line = one_error_line(err)
    assert code == 2 and expected in line and fix in line, line
    assert "delete it" not in line and "corrupt" not in line  # the model is fine: nothing to delete
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_a_model_not_available_offline_is_one_clean_line(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STALK_ASR_MODEL", "small")  # not in ../shared/models, not cached
    monkeypatch.setenv("STALK_MODELS_DIRS", str(tmp_path / "models"))
    monkeypatch.setenv("STALK_ASR_DOWNLOAD_ROOT", str(tmp_path / "cache"))
    # As on a machine without network, at once (and never a 460 MB download where there is one).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code, out, err = run_cli(capsys, "replay", "--speed", "0", "--db", str(tmp_path / "c.db"), f"a={JFK}")
    line = one_error_line(err)
    assert code == 2
    assert line.startswith("error: Whisper model Systran/faster-whisper-small is not on this machine (looked in ")
    assert "cannot be downloaded: " in line and "connect to the internet once" in line
    assert "LocalEntryNotFoundError" not in line and "snapshot folder" not in line and len(line) < 400


def test_a_json_export_is_json_even_with_infinite_times_stored(capsys, stored: Path) -> None:
    """An older S-Talk given --speed inf stored inf call times; the export said Infinity."""
    from storage import open_database
    from storage.recorder import CallRecorder
    from storage.records import UtteranceRecord

    with open_database(str(stored)) as db:
        rec = CallRecorder(db)
        pid = rec.add_participant(1, "ann")
        rec.add_utterance(UtteranceRecord(1, pid, 1.0, 2.0, float("inf"), "hello", speaker_score=float("nan")))
    code, out, err = run_cli(capsys, "logs", "export", "1", "--db", str(stored))

    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    data = json.loads(out, parse_constant=refuse)
    assert code == 0 and data["utterances"][0]["transcribed_at"] is None
    assert data["utterances"][0]["speaker_score"] is None
