"""Retention: calls older than the configured age are deleted for good.

The bot calls ``purge_expired`` when it starts and then every ``[retention] check_hours``
(from a worker thread: it is blocking database work); ``python -m bot logs purge`` does the
same on demand. A call's age counts from when it started. Calls still 'active' are never
purged (a call in progress, or one a crash left open: ``close_stale_sessions`` closes those
at the next start, and the next purge takes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from storage.db import Database
from storage.deletion import FileCleanup, delete_sessions, scrub_file
from storage.models import CallSession, utcnow

BATCH = 200  # calls per transaction: the bot's writer is never locked out for long


@dataclass(frozen=True)
class Purged:
    cutoff: datetime | None  # None: keep forever (max_age_days 0), nothing done
    sessions: int = 0
    utterances: int = 0
    suggestions: int = 0
    cleanup: FileCleanup | None = None


def purge_older_than(db: Database, days: float, *, now: datetime | None = None) -> Purged:
    """Delete every finished call that started more than ``days`` days before ``now``."""
    if days <= 0:
        raise ValueError("days must be more than 0")
    cutoff = (now or utcnow()) - timedelta(days=days)
    sessions = utterances = suggestions = 0
    while True:
        with db.session() as s:
            ids = list(s.scalars(
                select(CallSession.id)
                .where(CallSession.started_at < cutoff, CallSession.status != "active")
                .order_by(CallSession.id).limit(BATCH)
            ))
        if not ids:
            break
        u, g, _ = delete_sessions(db, ids)
        sessions, utterances, suggestions = sessions + len(ids), utterances + u, suggestions + g
    cleanup = scrub_file(db) if sessions else None
    return Purged(cutoff, sessions, utterances, suggestions, cleanup)


def purge_expired(db: Database, max_age_days: int, *, now: datetime | None = None) -> Purged:
    """Apply ``[retention] max_age_days``; 0 keeps everything."""
    if max_age_days <= 0:
        return Purged(cutoff=None)
    return purge_older_than(db, max_age_days, now=now)
