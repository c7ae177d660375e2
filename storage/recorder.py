"""Write side used by the pipeline's worker threads: one short transaction per call.

Each utterance is committed as soon as it is transcribed, so a crash loses only what was
still being transcribed. A failed call is kept and marked 'failed' with its error, never
silently half-stored; sessions a crash left 'active' are closed by ``close_stale_sessions``
(at the bot's start) or ``close_left_active`` (``logs close``), which tell them from calls
still being recorded by the process recorded with each (``storage.recorders``).

A full disk refuses every write, the final "this call failed" included. While a call is
recorded into a SQLite file, a small reserve file lies beside it (``RESERVE_BYTES``); when the
session cannot be closed for lack of space, the reserve is deleted and the close tried again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from storage import heartbeat
from storage.db import Database, is_locked_error, rowcount
from storage.errors import StorageError
from storage.models import (
    FINAL_STATUSES,
    SESSION_SOURCES,
    VERIFICATIONS,
    CallSession,
    Participant,
    Suggestion,
    Utterance,
    utcnow,
)
from storage.recorders import RecorderState, describe, liveness, this_process
from storage.records import NewSession, SuggestionRecord, UtteranceRecord
from storage.vocab import SessionStatus, Verification

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = 30.0
STALE_ERROR = "S-Talk stopped before the call ended; found still active at the next start"
RESERVE_BYTES = 256 * 1024  # a few WAL frames close a session; this is ample and cheap


def is_full_error(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc.__cause__ or exc).lower()
    return "database or disk is full" in text or "no space left" in text


def reserve_path(db: Database, session_id: int) -> Path | None:
    return None if db.path is None else db.path.with_name(f"{db.path.name}-reserve-{session_id}")


def drop_reserve(db: Database, session_id: int) -> bool:
    """Delete the space reserved to close ``session_id`` (True if there was a reserve file)."""
    path = reserve_path(db, session_id)
    if path is None:
        return False
    try:
        path.unlink()
        return True
    except OSError:
        return False


class CallRecorder:
    """Thread-safe writer for calls.

    ``lock_timeout`` bounds how long a write keeps retrying while another process holds the
    database's write lock; after that a StorageError is raised and the caller still has
    the record it tried to store.
    """

    def __init__(self, db: Database, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.db = db
        self.lock_timeout = lock_timeout
        # Our own threads queue here instead of contending for SQLite's lock.
        self._lock = threading.Lock()

    def start_session(self, new: NewSession) -> int:
        if new.source not in SESSION_SOURCES:
            raise ValueError(f"source must be one of {SESSION_SOURCES}, not {new.source!r}")

        def write(s: Session) -> int:
            row = CallSession(
                source=new.source,
                title=new.title,
                language=new.language,
                asr_model=new.asr_model,
                guild_id=new.guild_id,
                channel_id=new.channel_id,
                started_by=new.started_by,
                status=SessionStatus.ACTIVE,
                started_at=utcnow(),
                recorder=this_process(),
                heartbeat_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return row.id

        session_id = self._write("starting a session", write)
        heartbeat.hold(self.db, session_id)
        self._make_reserve(session_id)
        return session_id

    def _make_reserve(self, session_id: int) -> None:
        path = reserve_path(self.db, session_id)
        if path is None:
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                # Written, not just sized: a sparse file would free no space when deleted.
                os.write(fd, bytes(RESERVE_BYTES))
            finally:
                os.close(fd)
        except OSError as exc:  # the disk is already full: nothing to reserve
            log.info("no space reserved beside %s for closing session %s: %s", self.db.label, session_id, exc)
            try:
                path.unlink()
            except OSError:
                pass

    def add_participant(self, session_id: int, name: str, user_id: str | None = None, joined_at: float = 0.0) -> int:
        def write(s: Session) -> int:
            self._require_session(s, session_id)
            row = Participant(session_id=session_id, name=name, user_id=user_id, joined_at=joined_at)
            s.add(row)
            s.flush()
            return row.id

        return self._write(f"adding participant {name!r}", write)

    def participant_left(self, participant_id: int, left_at: float) -> None:
        def write(s: Session) -> None:
            done = s.execute(update(Participant).where(Participant.id == participant_id).values(left_at=left_at))
            if rowcount(done) != 1:
                raise ValueError(f"no participant {participant_id}")

        self._write("recording a participant leaving", write)

    def add_utterance(self, record: UtteranceRecord) -> int:
        if record.end < record.start:
            raise ValueError(f"utterance ends ({record.end}) before it starts ({record.start})")
        if record.verification is not None and record.verification not in VERIFICATIONS:
            raise ValueError(f"verification must be one of {VERIFICATIONS}, not {record.verification!r}")

        def write(s: Session) -> int:
            owner = s.scalar(select(Participant.session_id).where(Participant.id == record.participant_id))
            if owner != record.session_id:
                # The foreign keys alone would accept a speaker from another call.
                raise ValueError(f"participant {record.participant_id} is not in session {record.session_id}")
            row = Utterance(
                session_id=record.session_id,
                participant_id=record.participant_id,
                start=record.start,
                end=record.end,
                transcribed_at=record.transcribed_at,
                created_at=utcnow(),
                text=record.text,
                language=record.language,
                language_probability=record.language_probability,
                avg_logprob=record.avg_logprob,
                no_speech_prob=record.no_speech_prob,
                compression_ratio=record.compression_ratio,
                speaker_score=record.speaker_score,
                verification=record.verification,
                speaker_label=record.speaker_label,
            )
            s.add(row)
            s.flush()
            return row.id

        return self._write("saving an utterance", write)

    def update_verification(
        self,
        utterance_id: int,
        speaker_score: float | None,
        verification: Verification | None,
        speaker_label: str | None,
    ) -> None:
        """Revise a stored speaker verdict (later utterances' evidence changed it)."""
        if verification is not None and verification not in VERIFICATIONS:
            raise ValueError(f"verification must be one of {VERIFICATIONS}, not {verification!r}")

        def write(s: Session) -> None:
            done = s.execute(
                update(Utterance)
                .where(Utterance.id == utterance_id)
                .values(speaker_score=speaker_score, verification=verification, speaker_label=speaker_label)
            )
            if rowcount(done) != 1:
                raise ValueError(f"no utterance {utterance_id}")

        self._write("revising a speaker verdict", write)

    def add_suggestion(self, record: SuggestionRecord) -> int:
        def write(s: Session) -> int:
            self._require_session(s, record.session_id)
            row = Suggestion(
                session_id=record.session_id,
                at=record.at,
                text=record.text,
                source=record.source,
                language=record.language,
                recipients=list(record.recipients),
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return row.id

        return self._write("saving a suggestion", write)

    def finish_session(
        self, session_id: int, status: SessionStatus, *, error: str | None = None, duration: float | None = None
    ) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")
        if status == SessionStatus.FAILED and not error:
            raise ValueError("a failed session needs its error, so the log says why")

        def write(s: Session) -> None:
            row = self._require_session(s, session_id)
            row.status = status
            row.error = error
            row.ended_at = utcnow()
            if duration is not None:
                row.duration = duration

        try:
            self._write(f"finishing session {session_id}", write)
        except StorageError as exc:
            if not (is_full_error(exc) and drop_reserve(self.db, session_id)):
                raise
            log.warning("the disk is full: used the space reserved to close session %s", session_id)
            self._write(f"finishing session {session_id}", write)
        finally:
            # Even when the close failed: a session this process stopped recording must go
            # stale, so that another process's clean-up may close it.
            heartbeat.release(self.db, session_id)
        drop_reserve(self.db, session_id)

    def close_stale_sessions(self, status: SessionStatus = SessionStatus.INTERRUPTED) -> int:
        """Close sessions a crash left 'active'; returns how many.

        Call at startup, before this process starts sessions of its own. A session whose
        recorder still records it (a replay meanwhile, another bot process on this machine or,
        by its fresh heartbeat, on another) is left alone; one whose recorder is gone, or cannot
        be told (a row from an S-Talk before heartbeats), is closed. The end is taken from what
        was stored (last utterance), not from now, which may be days later.

        Several processes may run this at once on one database: each session is closed by one
        of them (PostgreSQL: the rows are locked, and those another process holds are skipped;
        SQLite: the write lock is taken when the transaction begins).
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {FINAL_STATUSES}, not {status!r}")

        def write(s: Session) -> list[int]:
            now = utcnow()
            seen = s.execute(
                select(CallSession.id, CallSession.recorder, CallSession.heartbeat_at).where(
                    CallSession.status == SessionStatus.ACTIVE
                )
            ).all()
            maybe = [r.id for r in seen if liveness(r.recorder, r.heartbeat_at, now=now) != RecorderState.ALIVE]
            if not maybe:
                return []
            # Locked, and checked again under the lock: a live recorder's heartbeat may have
            # landed meanwhile, or another process closed it first.
            rows = s.scalars(
                select(CallSession)
                .where(CallSession.id.in_(maybe), CallSession.status == SessionStatus.ACTIVE)
                .order_by(CallSession.id)
                .with_for_update(skip_locked=True)
            ).all()
            stale = [row for row in rows if liveness(row.recorder, row.heartbeat_at, now=now) != RecorderState.ALIVE]
            for row in stale:
                _close_left(s, row, status, row.error or STALE_ERROR)
            return [row.id for row in stale]

        closed = self._write("closing stale sessions", write)
        for session_id in closed:
            drop_reserve(self.db, session_id)
        if closed:
            log.warning("marked %d session(s) left active by a previous run as %s", len(closed), status)
        return len(closed)

    def close_left_active(self, session_id: int, *, force: bool = False) -> LeftActive:
        """Mark one session a crash left 'active' as interrupted (``logs close``).

        Refused ('recording') while its recorder process runs (or, on another machine, its
        heartbeat is fresh); ('unknown') when that cannot be told (an S-Talk that recorded no
        heartbeat) unless
        ``force``. 'not_active' when it had already ended, 'not_found' when there is none.
        """

        def write(s: Session) -> LeftActive:
            row = s.get(CallSession, session_id)
            if row is None:
                return LeftActive("not_found", session_id)
            who = describe(row.recorder)
            if row.status != SessionStatus.ACTIVE:
                return LeftActive("not_active", session_id, row.status, who)
            st = liveness(row.recorder, row.heartbeat_at)
            if st == RecorderState.ALIVE or (st == RecorderState.UNKNOWN and not force):
                return LeftActive("recording" if st == RecorderState.ALIVE else "unknown", session_id, row.status, who)
            _close_left(
                s, row, SessionStatus.INTERRUPTED, f"closed from the command line: {who} had stopped recording it"
            )
            return LeftActive("closed", session_id, SessionStatus.INTERRUPTED, who)

        result = self._write(f"closing session {session_id}", write)
        if result.outcome == "closed":
            drop_reserve(self.db, session_id)
        return result

    def _require_session(self, s: Session, session_id: int) -> CallSession:
        row = s.get(CallSession, session_id)
        if row is None:
            raise ValueError(f"no session {session_id}")
        return row

    def _write(self, what: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` in its own committed transaction, retrying while the DB is locked."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        with self._lock:
            while True:
                try:
                    with self.db.write_session() as s, s.begin():
                        return work(s)
                except OperationalError as exc:
                    if is_full_error(exc):
                        raise StorageError(
                            f"{what} in database {self.db.label} failed: the disk is full",
                            "free some space on the disk holding it",
                        ) from exc
                    if not is_locked_error(exc):
                        raise StorageError(f"{what} in database {self.db.label} failed: {exc.orig}") from exc
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise StorageError(
                            f"database {self.db.label} stayed locked for {self.lock_timeout:g} s while {what}",
                            "another program holds its write lock (a second S-Talk, a DB browser with "
                            "unsaved changes); close it, or use another file with --db",
                        ) from exc
                    log.warning("database %s is locked while %s; retrying", self.db.label, what)
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 1.0)
                except DBAPIError as exc:  # the file replaced by something else, a constraint ...
                    raise StorageError(f"{what} in database {self.db.label} failed: {exc.orig}") from exc


@dataclass(frozen=True)
class LeftActive:
    """What ``close_left_active`` did: outcome 'closed', 'recording', 'unknown', 'not_active'
    or 'not_found'; ``recorder`` describes the process that recorded it."""

    outcome: str
    session_id: int
    status: str | None = None
    recorder: str | None = None


def _close_left(s: Session, row: CallSession, status: SessionStatus, error: str) -> None:
    """Close a session whose recorder is gone: its end is its last stored utterance."""
    last_end, last_created = s.execute(
        select(func.max(Utterance.end), func.max(Utterance.created_at)).where(Utterance.session_id == row.id)
    ).one()
    row.status = status
    row.error = error
    row.ended_at = last_created or row.started_at
    if row.duration is None:
        row.duration = last_end
