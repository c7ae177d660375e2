"""Retention: calls older than the configured age are deleted for good.

The bot calls ``purge_expired`` when it starts and then every ``[retention] check_hours``
(from a worker thread: it is blocking database work); ``python -m bot logs purge`` does the
same on demand. A call's age counts from when it started. Calls still being recorded are
never purged; a call a crash left 'active' (its recorder process is gone, see
``storage.recorders``) is purged like a finished one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from storage.db import Database
from storage.deletion import FileCleanup, delete_sessions_in, left_active, scrub_file
from storage.errors import StalkError
from storage.models import CallSession, utcnow
from storage.recorder import drop_reserve
from storage.vocab import SessionStatus

log = logging.getLogger(__name__)

BATCH = 200  # calls per transaction: the bot's writer is never locked out for long
MAX_DAYS = 36500  # [retention] max_age_days's limit; more would not fit a datetime


@dataclass(frozen=True)
class Purged:
    cutoff: datetime | None  # None: keep forever (max_age_days 0), nothing done
    sessions: int = 0
    utterances: int = 0
    suggestions: int = 0
    cleanup: FileCleanup | None = None
    recording: int = 0  # old enough but still being recorded (or by a recorder that cannot be told): kept


def purge_older_than(db: Database, days: float, *, now: datetime | None = None) -> Purged:
    """Delete every finished call that started more than ``days`` days before ``now``."""
    if days <= 0:
        raise ValueError("days must be more than 0")
    if days > MAX_DAYS:
        raise ValueError(f"days must be at most {MAX_DAYS}")
    cutoff = (now or utcnow()) - timedelta(days=days)
    sessions = utterances = suggestions = 0
    recording = 0
    after = 0
    while True:
        # Chosen, counted and deleted in one transaction. Several processes sharing a database
        # may purge at once: on PostgreSQL each locks its batch's rows and skips those another
        # holds (it is deleting them), so each call is deleted and counted by one of them; on
        # SQLite the transaction holds the write lock from its start.
        with db.write_session() as s, s.begin():
            rows = s.execute(
                select(CallSession.id, CallSession.status, CallSession.recorder, CallSession.heartbeat_at)
                .where(CallSession.started_at < cutoff, CallSession.id > after)
                .order_by(CallSession.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                break
            after = rows[-1].id
            ids = [
                r.id
                for r in rows
                if r.status != SessionStatus.ACTIVE or left_active(r.recorder, heartbeat_at=r.heartbeat_at)
            ]
            recording += len(rows) - len(ids)
            if ids:
                u, g, _ = delete_sessions_in(s, ids)
                sessions, utterances, suggestions = sessions + len(ids), utterances + u, suggestions + g
        for session_id in ids:
            drop_reserve(db, session_id)
    cleanup = scrub_file(db) if sessions else None
    return Purged(cutoff, sessions, utterances, suggestions, cleanup, recording)


def purge_expired(db: Database, max_age_days: int, *, now: datetime | None = None) -> Purged:
    """Apply ``[retention] max_age_days``; 0 keeps everything."""
    if max_age_days <= 0:
        return Purged(cutoff=None)
    return purge_older_than(db, max_age_days, now=now)


class RetentionWorker:
    """``purge_expired`` at start and then every ``every_s`` seconds, on a thread of its own.

    For the bot: ``RetentionWorker(db, cfg.retention.max_age_days, cfg.retention.check_hours
    * 3600).start()`` when it starts, ``stop()`` when it shuts down. With ``max_age_days`` 0
    it starts nothing. A failed purge (the database locked for long) is logged and retried
    at the next interval; ``on_purge`` is told of each completed one.
    """

    def __init__(
        self, db: Database, max_age_days: int, every_s: float, on_purge: Callable[[Purged], None] | None = None
    ) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be more than 0")
        self.db = db
        self.max_age_days = max_age_days
        self.every_s = every_s
        self.on_purge = on_purge
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.max_age_days <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="s-talk-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = purge_expired(self.db, self.max_age_days)
            except (DBAPIError, StalkError) as exc:
                log.warning("retention purge failed, retrying in %.0f s: %s", self.every_s, exc)
            else:
                if result.sessions:
                    log.info("retention: deleted %d calls started before %s", result.sessions, result.cutoff)
                if self.on_purge is not None:
                    self.on_purge(result)
            self._stop.wait(self.every_s)
