"""A database locked by another process during a call loses no utterance."""

from __future__ import annotations

import json
import os
import sqlite3
import threading

import numpy as np
import pytest

from bot.audio.frames import PcmFrame
from bot.clock import VirtualClock
from bot.errors import StorageError
from bot.pipeline import CallPipeline, PipelineListener
from storage import open_database
from storage.recorder import CallRecorder
from storage.records import NewSession
from tests.calls import RATE, librispeech_files, load16k


def three_sentences():
    parts = []
    for f in librispeech_files("2609")[:3]:
        parts += [load16k(f), np.zeros(RATE, np.float32)]
    return np.concatenate(parts)


class Locker(PipelineListener):
    """Another process takes the write lock when the first transcript arrives."""

    def __init__(self, path, release_after: int | None):
        self.path = path
        self.release_after = release_after
        self.seen = 0
        self.con = None
        self.lock = threading.Lock()

    def on_utterance(self, event):
        with self.lock:
            self.seen += 1
            if self.con is None and self.seen == 1:
                self.con = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
                self.con.execute("BEGIN EXCLUSIVE")
            elif self.con is not None and self.release_after is not None and self.seen >= self.release_after:
                self.release()

    def release(self):
        if self.con is not None:
            self.con.execute("ROLLBACK")
            self.con.close()
            self.con = None


def call(tmp_path, config, tiny_en, release_after):
    path = tmp_path / "locked.db"
    # SQLite's own wait per statement, short here: each write against the held lock would
    # otherwise wait the default before the recorder's retries even begin.
    db = open_database(str(path), busy_timeout=0.3)
    recorder = CallRecorder(db, lock_timeout=0.3)
    locker = Locker(path, release_after)
    pipeline = CallPipeline(config, tiny_en, recorder=recorder, clock=VirtualClock(), listeners=[locker])
    sid = pipeline.open(NewSession(source="replay", title="lock test"))
    pipeline.add_speaker("a", "Ann")
    audio = three_sentences()
    for i in range(0, len(audio), 8000):
        pipeline.feed("a", PcmFrame(i / RATE, audio[i : i + 8000], RATE))
    return db, sid, pipeline, locker, path


@pytest.mark.slow
def test_utterances_wait_in_memory_until_the_lock_is_released(tmp_path, config, tiny_en):
    db, sid, pipeline, locker, path = call(tmp_path, config, tiny_en, release_after=3)
    locker.release()
    summary = pipeline.close()
    db.close()
    assert summary.unsaved_file is None and summary.status == "completed"
    con = sqlite3.connect(path)
    stored = con.execute("select count(*) from utterances where session_id = ?", (sid,)).fetchone()[0]
    assert stored == sum(s.utterances for s in summary.speakers.values()) >= 3
    assert con.execute("select status from sessions where id = ?", (sid,)).fetchone()[0] == "completed"


@pytest.mark.slow
def test_a_database_that_never_comes_back_leaves_a_recovery_file(tmp_path, config, tiny_en, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db, sid, pipeline, locker, path = call(tmp_path, config, tiny_en, release_after=None)
    summary = pipeline.close()
    locker.release()
    assert summary.status == "failed" and summary.unsaved_file
    saved = json.loads(open(summary.unsaved_file, encoding="utf-8").read())
    con = sqlite3.connect(path)
    in_db = con.execute("select count(*) from utterances where session_id = ?", (sid,)).fetchone()[0]
    # Every transcript is somewhere: the one stored before the lock, the rest in the file.
    assert in_db + len(saved) == sum(s.utterances for s in summary.speakers.values())
    assert all(r["session_id"] == sid and r["text"] for r in saved)
    assert os.path.dirname(summary.unsaved_file) == str(tmp_path)
    # The session row could not be closed; the next start closes it (see storage tests).
    assert con.execute("select status from sessions where id = ?", (sid,)).fetchone()[0] == "active"
    db.close()


def test_a_pipeline_that_cannot_open_its_session_stops_its_threads(tmp_path, config, tiny_en):
    """A failed start releases what it took: the transcription pool's threads are gone."""
    path = tmp_path / "locked.db"
    db = open_database(str(path))
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock all along
    try:
        pipeline = CallPipeline(config, tiny_en, recorder=CallRecorder(db, lock_timeout=0.3), clock=VirtualClock())
        workers = list(pipeline.pool.scheduler._threads)
        assert workers and all(t.is_alive() for t in workers)
        with pytest.raises(StorageError):
            pipeline.open(NewSession(source="replay", title="never opened"))
        assert not any(t.is_alive() for t in workers)
    finally:
        other.execute("ROLLBACK")
        other.close()
        db.close()
