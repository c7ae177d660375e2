"""``python -m bot logs`` end to end through bot.cli.main on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storage import CallRecorder, NewSession, SuggestionRecord, UtteranceRecord, open_database
from tests.cli import run_cli


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


@pytest.fixture
def recorded(db_path: Path) -> dict[str, int]:
    with open_database(str(db_path)) as db:
        rec = CallRecorder(db)
        first = rec.start_session(NewSession(source="replay", title="first"))
        a = rec.add_participant(first, "alice")
        rec.add_utterance(UtteranceRecord(first, a, 0.0, 1.0, 1.5, "hello"))
        rec.finish_session(first, "completed", duration=65.0)

        second = rec.start_session(NewSession(source="discord", title="회의", language="auto"))
        minsu = rec.add_participant(second, "민수", user_id="42")
        wang = rec.add_participant(second, "王芳")
        rec.add_utterance(
            UtteranceRecord(second, minsu, 0.5, 1.2344, 2.0, "안녕하세요", language="ko", verification="verified")
        )
        rec.add_utterance(UtteranceRecord(second, wang, 1.5, 3.0, 3.2, "你好", language="zh"))
        rec.add_suggestion(SuggestionRecord(second, at=10.0, text="주말 계획?", source="fallback", recipients=["민수"]))
        rec.finish_session(second, "failed", error="voice connection lost", duration=3725.0)
    return {"first": first, "second": second}


def test_list_shows_a_table_newest_first(capsys, db_path: Path, recorded: dict[str, int]) -> None:
    code, out, err = run_cli(capsys, "logs", "list", "--db", str(db_path))
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STARTED", "STATUS", "DURATION", "PARTICIPANTS", "UTTERANCES"]
    assert len(rows) == 2
    newest, oldest = rows
    assert newest.split()[0] == str(recorded["second"])
    assert "failed" in newest and "1:02:05" in newest and "민수, 王芳" in newest
    assert newest.rstrip().endswith("2")
    assert oldest.split()[0] == str(recorded["first"])
    assert "completed" in oldest and "1:05" in oldest and "alice" in oldest
    assert oldest.rstrip().endswith("1")


def test_list_limit(capsys, db_path: Path, recorded: dict[str, int]) -> None:
    code, out, _ = run_cli(capsys, "logs", "list", "--limit", "1", "--db", str(db_path))
    assert code == 0
    assert len(out.splitlines()) == 2 and out.splitlines()[1].split()[0] == str(recorded["second"])


def test_list_empty_database(capsys, db_path: Path) -> None:
    open_database(str(db_path)).close()
    code, out, _ = run_cli(capsys, "logs", "list", "--db", str(db_path))
    assert (code, out.strip()) == (0, f"no sessions in {db_path}")


def test_list_missing_database_is_not_created(capsys, tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    code, out, err = run_cli(capsys, "logs", "list", "--db", str(path))
    assert code == 2 and out == ""
    assert err.startswith(f"error: no database at {path}")
    assert not path.exists()


def test_db_url_comes_from_config_when_no_db_option(
    capsys, db_path: Path, recorded: dict[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STALK_STORAGE_URL", raising=False)
    config = tmp_path / "s-talk.toml"
    config.write_text(f'[storage]\nurl = "{db_path}"\n', encoding="utf-8")
    code, out, err = run_cli(capsys, "logs", "list", "--config", str(config))
    assert code == 0, err
    assert "민수, 王芳" in out


def test_export_json_to_stdout(capsys, db_path: Path, recorded: dict[str, int]) -> None:
    code, out, err = run_cli(
        capsys, "logs", "export", str(recorded["second"]), "--format", "json", "--db", str(db_path)
    )
    assert code == 0, err
    assert "안녕하세요" in out and "你好" in out  # not \u escapes
    data = json.loads(out)
    assert data["session"]["status"] == "failed"
    assert data["session"]["error"] == "voice connection lost"
    assert data["participants"] == [{"name": "민수", "user_id": "42"}, {"name": "王芳", "user_id": None}]
    assert [(u["speaker"], u["start"], u["end"], u["text"], u["verified"]) for u in data["utterances"]] == [
        ("민수", 0.5, 1.234, "안녕하세요", True),
        ("王芳", 1.5, 3.0, "你好", None),
    ]
    assert data["suggestions"] == [{"at": 10.0, "text": "주말 계획?", "source": "fallback", "recipients": ["민수"]}]


def test_export_json_to_file(capsys, db_path: Path, recorded: dict[str, int], tmp_path: Path) -> None:
    target = tmp_path / "out" / "call.json"
    target.parent.mkdir()
    code, out, err = run_cli(
        capsys, "logs", "export", str(recorded["first"]), "--output", str(target), "--db", str(db_path)
    )
    assert code == 0, err
    assert out == ""
    data = json.loads(target.read_bytes().decode("utf-8"))
    assert data["session"]["id"] == recorded["first"]
    assert [u["text"] for u in data["utterances"]] == ["hello"]
    assert str(target) in err


def test_export_unknown_id(capsys, db_path: Path, recorded: dict[str, int]) -> None:
    code, out, err = run_cli(capsys, "logs", "export", "999", "--format", "json", "--db", str(db_path))
    assert code == 2 and out == ""
    assert err.strip() == f"error: no session 999 in {db_path}; `python -m bot logs list` shows the ids"


def test_text_file_as_db(capsys, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 40, encoding="utf-8")
    code, _, err = run_cli(capsys, "logs", "list", "--db", str(notes))
    assert code == 2
    assert err.startswith(f"error: {notes} is not a database")
