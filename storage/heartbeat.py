"""The heartbeat of this process's active sessions: what tells another machine that they are
still being recorded (``storage.recorders.liveness``).

``CallRecorder.start_session`` holds a beat for its session and ``finish_session`` lets it go;
while a process holds any for a database, one thread refreshes ``sessions.heartbeat_at`` of
all of them in one UPDATE every ``BEAT_S`` seconds. The thread dies with the process: that is
the point (a process killed stops beating, and its sessions go stale).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from storage.db import Database, rowcount
from storage.models import CallSession, utcnow
from storage.recorders import BEAT_S, this_process
from storage.vocab import SessionStatus

log = logging.getLogger(__name__)


class _Beat:
    def __init__(self, db: Database, every_s: float) -> None:
        self.db = db
        self.every_s = every_s
        self.sessions: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="s-talk-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                beat(self.db)
            except DBAPIError as exc:  # locked or unreachable for a while: the next beat may pass
                log.warning("could not refresh the heartbeat of this process's sessions: %s", exc.orig)


_lock = threading.Lock()
_beats: dict[int, _Beat] = {}  # id(Database) -> its beat


def beat(db: Database) -> int:
    """Refresh the heartbeat of every active session this process records; how many."""
    with db.write_session() as s, s.begin():
        done = s.execute(
            update(CallSession)
            .where(CallSession.recorder == this_process(), CallSession.status == SessionStatus.ACTIVE)
            .values(heartbeat_at=utcnow())
        )
    return rowcount(done)


def hold(db: Database, session_id: int, *, every_s: float = BEAT_S) -> None:
    """Keep ``session_id``'s heartbeat fresh until ``release``."""
    with _lock:
        current = _beats.get(id(db))
        if current is None or current.stop.is_set():
            current = _beats[id(db)] = _Beat(db, every_s)
            current.thread.start()
            db.on_close(lambda: _stop(db))
        current.sessions.add(session_id)


def _stop(db: Database) -> None:
    with _lock:
        current = _beats.pop(id(db), None)
    if current is not None:
        current.stop.set()
        if current.thread is not threading.current_thread():
            current.thread.join(5.0)


def release(db: Database, session_id: int) -> None:
    """``session_id`` has ended; the thread stops with the last of the database's sessions."""
    with _lock:
        current = _beats.get(id(db))
        if current is None:
            return
        current.sessions.discard(session_id)
        if current.sessions:
            return
    _stop(db)  # a beat in progress is one short UPDATE


def held(db: Database) -> frozenset[int]:
    """The sessions whose heartbeat this process keeps for ``db`` (for tests and doctor)."""
    with _lock:
        current = _beats.get(id(db))
        return frozenset(current.sessions) if current else frozenset()
