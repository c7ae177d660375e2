"""Ways a call used to end half-stored or leave a session 'active' (issue 13, "signals and lost
data"), other than signals (tests/test_signals.py) and a full disk (tests/test_disk_full.py):
the database file deleted or moved during the call, a transcription worker crashing, a
session left 'active' by a process that died, and deleting while another program reads.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import bot.asr.transcriber
from storage import get_session, open_database
from storage.models import CallSession, utcnow
from storage.recorder import CallRecorder
from storage.records import NewSession, UtteranceRecord
from tests.calls import tiny_en_dir
from tests.cli import one_error_line, run_cli
from tests.processes import dead_recorder, set_recorder

REPO = Path(__file__).resolve().parents[1]
TRACKS = [f"alice={REPO / 'samples' / 'alice.flac'}", f"bob={REPO / 'samples' / 'bob.flac'}"]
UTTERANCE_LINE = re.compile(r"^\[\d\d:\d\d\.\d\d - .*  \(\+\d+\.\d\d s\)")  # a transcript line, with its latency


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALK_")}
    env.update(PYTHONPATH=str(REPO), STALK_ASR_MODEL=tiny_en_dir(), STALK_LLM_ENABLED="false")
    return env


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM utterances").fetchone()[0]
    except sqlite3.Error:
        return 0


def _replay_and(tmp_path: Path, action) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m bot replay --speed 2``; ``action(db)`` once its first utterance is stored."""
    db = tmp_path / "calls.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "replay", "--speed", "2", "--db", str(db), *TRACKS],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while _stored(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    action(db)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), db


def _recovered(tmp_path: Path) -> list[dict]:
    (path,) = tmp_path.glob("s-talk-unsaved-session-*.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_database_file_deleted_during_the_call(tmp_path) -> None:
    def delete(db: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)

    done, db = _replay_and(tmp_path, delete)
    # SQLite went on writing into the deleted file without an error: the call is not stored,
    # every utterance is in the recovery file, and the exit status says so.
    assert done.returncode == 1, done.stderr
    line = one_error_line(done.stderr)
    assert "was deleted or moved away" in line and "s-talk-unsaved-session-1-" in line
    printed = [x for x in done.stdout.splitlines() if UTTERANCE_LINE.match(x)]
    records = _recovered(tmp_path)
    assert len(records) == len(printed) >= 5
    assert not db.exists()


@pytest.mark.slow
def test_database_file_moved_during_the_call(tmp_path) -> None:
    moved = tmp_path / "elsewhere.db"

    def move(db: Path) -> None:
        os.rename(db, moved)  # -wal and -shm stay by name: SQLite keeps them open

    done, db = _replay_and(tmp_path, move)
    assert done.returncode == 1 and "was deleted or moved away" in one_error_line(done.stderr)
    # What was written since the last checkpoint stays in calls.db-wal, which no longer goes
    # with the moved file: the recovery file holds the whole call.
    printed = [x for x in done.stdout.splitlines() if UTTERANCE_LINE.match(x)]
    assert len(_recovered(tmp_path)) == len(printed) >= 5


class Failing:
    """A transcriber whose ``transcribe_batch`` fails on some calls, as a worker meeting a bad
    GPU, a corrupted model page or a bug would; otherwise the real tiny.en."""

    def __init__(self, real, fail) -> None:
        self.real, self.fail, self.calls = real, fail, 0
        self.name = real.name
        self.lock = threading.Lock()

    def transcribe_batch(self, requests, options):
        with self.lock:
            self.calls += 1
            n = self.calls
        error = self.fail(n)
        if error is not None:
            raise error
        return self.real.transcribe_batch(requests, options)


def _replay_with(monkeypatch, capsys, tiny_en, tmp_path, fail) -> tuple[int, str, str, Path, Failing]:
    failing = Failing(tiny_en, fail)
    monkeypatch.setattr(bot.asr.transcriber.WhisperTranscriber, "from_config", classmethod(lambda cls, c: failing))
    for key in list(os.environ):
        if key.startswith("STALK_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("STALK_LLM_ENABLED", "false")
    monkeypatch.setenv("STALK_ASR_WORKERS", "1")  # the calls in a known order
    db = tmp_path / "calls.db"
    result: dict = {}

    def run() -> None:
        result["value"] = run_cli(capsys, "replay", "--speed", "0", "--db", str(db), *TRACKS)

    worker = threading.Thread(target=run, daemon=True)  # a hung one must not keep pytest from exiting
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the replay hung: a dead worker left close() waiting"
    code, out, err = result["value"]
    return code, out, err, db, failing


def test_a_worker_that_keeps_failing_on_one_utterance(monkeypatch, capsys, tiny_en, tmp_path) -> None:
    code, out, err, db, failing = _replay_with(
        monkeypatch,
        capsys,
        tiny_en,
        tmp_path,
        lambda n: RuntimeError("CUDA error: an illegal memory access") if n in (3, 4) else None,
    )
    # Not "completed, exit 0" with an utterance silently missing.
    assert code == 1
    line = one_error_line(err)
    assert "1 utterance could not be transcribed (RuntimeError: CUDA error: an illegal memory access)" in line
    with sqlite3.connect(db) as con:
        ((status, error),) = con.execute("SELECT status, error FROM sessions").fetchall()
        stored = con.execute("SELECT count(*) FROM utterances").fetchone()[0]
    assert status == "failed" and "could not be transcribed" in error
    assert stored == sum(1 for x in out.splitlines() if UTTERANCE_LINE.match(x)) >= 7  # the others are all there


def test_a_passing_worker_failure_is_retried(monkeypatch, capsys, tiny_en, tmp_path) -> None:
    code, out, err, db, failing = _replay_with(
        monkeypatch, capsys, tiny_en, tmp_path, lambda n: MemoryError("std::bad_alloc") if n == 2 else None
    )
    assert code == 0, err
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT status FROM sessions").fetchall() == [("completed",)]
        assert con.execute("SELECT count(*) FROM utterances").fetchone()[0] >= 8


def test_a_worker_dying_of_a_base_exception_does_not_hang_the_call(monkeypatch, capsys, tiny_en, tmp_path) -> None:
    code, out, err, db, failing = _replay_with(
        monkeypatch, capsys, tiny_en, tmp_path, lambda n: SystemExit("worker thread exited") if n >= 3 else None
    )
    assert code == 1 and "could not be transcribed (SystemExit: worker thread exited)" in one_error_line(err)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT status FROM sessions").fetchall() == [("failed",)]


# -- sessions left 'active' by a process that died, from the command line --------------------


@pytest.fixture
def left(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """Four 'active' sessions: left by a dead process, recorded by this (live) one, by an S-Talk
    that did not record its process, and by a process on another machine."""
    path = tmp_path / "calls.db"
    ids = {}
    with open_database(str(path)) as db:
        rec = CallRecorder(db)
        for key in ("dead", "alive", "unknown", "elsewhere"):
            sid = rec.start_session(NewSession(source="replay", title=key))
            pid = rec.add_participant(sid, "ann")
            rec.add_utterance(UtteranceRecord(sid, pid, 1.0, 2.5, 3.0, f"words of the {key} call"))
            ids[key] = sid
        set_recorder(db, ids["dead"], dead_recorder())
        set_recorder(db, ids["unknown"], None)
        set_recorder(db, ids["elsewhere"], "another-host/0123abcd:4242:99")
    return path, ids


def _status(path: Path, sid: int) -> str | None:
    with open_database(str(path)) as db:
        detail = get_session(db, sid)
    return None if detail is None else detail.status


def test_logs_close_a_session_a_crash_left_active(capsys, left) -> None:
    path, ids = left
    db = ("--db", str(path))
    assert Path(f"{path}-reserve-{ids['dead']}").exists()  # the space a crash left reserved
    code, out, err = run_cli(capsys, "logs", "close", str(ids["dead"]), *db)
    assert code == 0 and out.startswith(f"closed session {ids['dead']}: marked interrupted (process "), err
    assert _status(path, ids["dead"]) == "interrupted"
    assert not Path(f"{path}-reserve-{ids['dead']}").exists()
    code, _, err = run_cli(capsys, "logs", "close", str(ids["alive"]), *db)
    assert code == 2 and f"still being recorded by process {os.getpid()}" in one_error_line(err)
    with open_database(str(path)) as live_db:
        # Another machine's recorder that still beats is alive, and its call is left alone.
        set_recorder(live_db, ids["elsewhere"], "another-host/0123abcd:4242:99", utcnow())
    code, _, err = run_cli(capsys, "logs", "close", str(ids["elsewhere"]), "--force", *db)
    assert code == 2 and "still being recorded by process 4242 on another-host" in one_error_line(err)
    with open_database(str(path)) as live_db:
        set_recorder(live_db, ids["elsewhere"], "another-host/0123abcd:4242:99")  # from before heartbeats
    for key in ("unknown", "elsewhere"):
        code, _, err = run_cli(capsys, "logs", "close", str(ids[key]), *db)
        assert code == 2 and "cannot tell whether" in one_error_line(err) and "--force" in err
        code, _, err = run_cli(capsys, "logs", "close", str(ids[key]), "--force", *db)
        assert code == 0 and _status(path, ids[key]) == "interrupted", err
    assert _status(path, ids["alive"]) == "active"
    code, _, err = run_cli(capsys, "logs", "close", str(ids["dead"]), *db)
    assert code == 2 and "has already ended (interrupted)" in one_error_line(err)


def test_logs_delete_a_session_a_crash_left_active(capsys, left) -> None:
    path, ids = left
    db = ("--db", str(path))
    code, out, err = run_cli(capsys, "logs", "delete", str(ids["dead"]), "--yes", *db)
    assert code == 0 and out.startswith(f"deleted session {ids['dead']}"), err
    assert _status(path, ids["dead"]) is None and not Path(f"{path}-reserve-{ids['dead']}").exists()
    code, _, err = run_cli(capsys, "logs", "delete", str(ids["alive"]), "--yes", *db)
    assert code == 2 and "still being recorded by process" in one_error_line(err)
    code, _, err = run_cli(capsys, "logs", "delete", str(ids["unknown"]), "--yes", *db)
    assert code == 2 and "pass --force" in one_error_line(err)
    code, _, err = run_cli(capsys, "logs", "delete", str(ids["unknown"]), "--yes", "--force", *db)
    assert code == 0 and _status(path, ids["unknown"]) is None


def test_logs_purge_takes_old_sessions_a_crash_left_active(capsys, left) -> None:
    from sqlalchemy import update

    path, ids = left
    with open_database(str(path)) as db, db.session() as s, s.begin():
        s.execute(update(CallSession).values(started_at=utcnow() - timedelta(days=30)))
    code, out, err = run_cli(capsys, "logs", "purge", "--older-than", "7", "--yes", "--db", str(path))
    assert code == 0 and out.startswith("deleted 1 session started before"), err
    assert "kept 3 sessions that are still being recorded" in err
    assert _status(path, ids["dead"]) is None and _status(path, ids["alive"]) == "active"


def test_logs_delete_says_when_a_reader_keeps_the_words_in_the_file(capsys, left) -> None:
    path, ids = left
    code, _, _ = run_cli(capsys, "logs", "close", str(ids["dead"]), "--db", str(path))
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN'); c.execute('SELECT count(*) FROM utterances').fetchall()\n"
            "print('reading', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        code, out, err = run_cli(capsys, "logs", "delete", str(ids["dead"]), "--yes", "--db", str(path))
    finally:
        reader.kill()
        reader.wait()
    assert code == 0 and out.startswith(f"deleted session {ids['dead']}")
    (note,) = [line for line in err.splitlines() if line.strip()]
    assert note.startswith(f"note: another program is reading {path}, so the deleted text stays in the database file")
