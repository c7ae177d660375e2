"""Deleting for good: one call, or everything about one user.

"For good" means: the rows are gone, the full-text index holds nothing of them (FTS5 keeps
deleted terms in older index segments until they are merged, so the index is optimized
after every deletion), and the text is not left readable in the database file: connections
run with ``PRAGMA secure_delete=ON`` (freed space is overwritten with zeros) and the WAL is
checkpointed and truncated afterwards. If another connection is reading at that moment the
checkpoint cannot finish; the old pages are then overwritten at the next checkpoint, which
SQLite runs on its own as the WAL grows. ``FileCleanup.complete`` says which happened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.orm import Session

from storage.access import Viewer, deletable, visible
from storage.db import Database, rowcount
from storage.models import CallSession, Participant, Suggestion, SummaryRow, Utterance, Voiceprint
from storage.recorder import drop_reserve
from storage.recorders import RecorderState, liveness
from storage.search import optimize_index
from storage.vocab import SessionStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileCleanup:
    complete: bool  # False: a reader kept the WAL checkpoint from finishing (see module doc)


@dataclass(frozen=True)
class Deleted:
    """What ``delete_session`` did: ``status`` 'deleted', 'not_found' (no such call, or one
    the viewer may not see: the two are not told apart), 'forbidden' (the viewer may see it
    but only its starter or an administrator may delete it) or 'active' (the call is still
    being recorded: its pipeline would go on writing to it; end it first). A call left
    'active' by a process that is gone (``storage.recorders``) may be deleted; one whose
    recorder cannot be told only with ``force``."""

    status: Literal["deleted", "not_found", "forbidden", "active"]
    session_id: int
    utterances: int = 0
    suggestions: int = 0
    participants: int = 0
    cleanup: FileCleanup | None = None


Permission = Literal["allowed", "forbidden", "not_found", "active"]


def may_delete(db: Database, viewer: Viewer, session_id: int, *, force: bool = False) -> Permission:
    """Whether ``delete_session`` would delete: for offering a delete button at all."""
    with db.session() as s:
        return _permission(s, viewer, session_id, force)


def _permission(s: Session, viewer: Viewer, session_id: int, force: bool = False) -> Permission:
    found = s.execute(
        select(CallSession.status, CallSession.recorder, CallSession.heartbeat_at).where(
            CallSession.id == session_id, visible(viewer)
        )
    ).first()
    if found is None:
        return "not_found"
    if s.scalar(select(CallSession.id).where(CallSession.id == session_id, deletable(viewer))) is None:
        return "forbidden"
    if found.status == SessionStatus.ACTIVE and not left_active(found.recorder, force, found.heartbeat_at):
        return "active"
    return "allowed"


def left_active(recorder: str | None, force: bool = False, heartbeat_at: datetime | None = None) -> bool:
    """Whether an 'active' call with this recorder (and heartbeat) was left so by a process that
    is gone (or, with ``force``, by one that cannot be told to be running)."""
    st = liveness(recorder, heartbeat_at)
    return st == RecorderState.GONE or (force and st == RecorderState.UNKNOWN)


def delete_session(db: Database, viewer: Viewer, session_id: int, *, force: bool = False) -> Deleted:
    with db.write_session() as s, s.begin():
        permission = _permission(s, viewer, session_id, force)
        if permission != "allowed":
            return Deleted(permission, session_id)
        counts = _counts(s, [session_id])
        # ON DELETE CASCADE removes participants, utterances and suggestions; the utterances'
        # delete trigger removes their index entries.
        s.execute(delete(CallSession).where(CallSession.id == session_id))
        _optimize(s)
    drop_reserve(db, session_id)  # one a crash left active still has its reserve file beside the database
    return Deleted("deleted", session_id, *counts, cleanup=scrub_file(db))


def delete_sessions(db: Database, session_ids: list[int]) -> tuple[int, int, int]:
    """Delete these calls (the caller decided they may go); (utterances, suggestions,
    participants) removed. Does not scrub the file: callers deleting in batches do it once."""
    if not session_ids:
        return (0, 0, 0)
    with db.write_session() as s, s.begin():
        counts = delete_sessions_in(s, session_ids)
    for session_id in session_ids:
        drop_reserve(db, session_id)
    return counts


def delete_sessions_in(s: Session, session_ids: list[int]) -> tuple[int, int, int]:
    """``delete_sessions`` inside the caller's transaction (which has locked those rows);
    the caller drops their reserve files once it has committed."""
    counts = _counts(s, session_ids)
    s.execute(delete(CallSession).where(CallSession.id.in_(session_ids)))
    _optimize(s)
    return counts


def _counts(s: Session, ids: list[int]) -> tuple[int, int, int]:
    def count(model: type[Utterance] | type[Suggestion] | type[Participant]) -> int:
        return int(s.scalar(select(func.count()).select_from(model).where(model.session_id.in_(ids))) or 0)

    return count(Utterance), count(Suggestion), count(Participant)


def _optimize(s: Session) -> None:
    conn: Connection = s.connection()
    if conn.dialect.name == "sqlite":
        optimize_index(conn)


def scrub_file(db: Database) -> FileCleanup:
    """Move what secure_delete zeroed from the WAL into the file and empty the WAL."""
    if db.engine.dialect.name != "sqlite":
        return FileCleanup(complete=True)
    raw = db.engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None  # a pooled connection that was just checked out
        busy, _, _ = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        raw.close()
    if busy:
        log.info("WAL checkpoint after a deletion was blocked by a reader; it completes at a later checkpoint")
    return FileCleanup(complete=not busy)


@dataclass(frozen=True)
class Forgotten:
    user_id: str
    utterances: int
    participants: int
    voiceprints: int
    suggestions_deleted: int  # addressed to this user alone
    suggestions_readdressed: int  # their name taken off the recipients
    labels_cleared: int  # other people's utterances whose voice was attributed to them
    sessions_deleted: int  # calls that had nobody else in them
    sessions_unowned: int  # calls they started, kept for the others, starter cleared
    cleanup: FileCleanup
    summaries_dropped: list[int] = field(default_factory=list)  # calls whose summary held their words


def forget_user(db: Database, user_id: str | int) -> Forgotten:
    """Remove one Discord user from every stored call, for ``/forget``.

    Gone: their utterances, their participant rows, their voiceprints, their name as a
    suggestion recipient and as the voiceprint label on others' utterances, and all of it
    from the search index. Kept: the calls themselves with what everyone else said, including
    calls they started (they belong to the others too; the starter is cleared, so
    administrators alone may then delete them); a finished call with nobody else in it is
    deleted (one still being recorded is kept for whoever speaks next).
    The summaries of their calls are dropped (``summaries_dropped``: those whose calls remain,
    for the caller to make again from the others' words).
    Titles and other people's words are not rewritten even if they mention the user.
    """
    uid = str(user_id)
    with db.write_session() as s, s.begin():
        mine = s.execute(
            select(Participant.id, Participant.session_id, Participant.name).where(Participant.user_id == uid)
        ).all()
        part_ids = [p.id for p in mine]
        session_ids = sorted({p.session_id for p in mine})
        prints = s.execute(select(Voiceprint.id, Voiceprint.name).where(Voiceprint.user_id == uid)).all()
        names_by_session: dict[int, set[str]] = {}
        for p in mine:
            names_by_session.setdefault(p.session_id, set()).add(p.name)
        print_names = {v.name for v in prints}

        utterances = int(
            s.scalar(select(func.count()).select_from(Utterance).where(Utterance.participant_id.in_(part_ids))) or 0
        )
        labels = 0
        if print_names:
            labels = rowcount(
                s.execute(
                    update(Utterance)
                    .where(Utterance.speaker_label.in_(print_names))
                    .values(speaker_label=None, speaker_score=None)
                )
            )
        deleted_sugg = readdressed = 0
        for g in s.scalars(select(Suggestion).where(Suggestion.session_id.in_(session_ids))):
            names = names_by_session.get(g.session_id, set())
            kept = [r for r in g.recipients or [] if r not in names]
            if len(kept) == len(g.recipients or []):
                continue
            if kept:
                g.recipients = kept
                readdressed += 1
            else:
                s.delete(g)
                deleted_sugg += 1
        # A summary quotes and names people: one made while they were in the call goes, to be
        # made again (bot.summary) from what the others said.
        dropped = list(s.scalars(select(SummaryRow.session_id).where(SummaryRow.session_id.in_(session_ids))))
        s.execute(delete(SummaryRow).where(SummaryRow.session_id.in_(dropped)))
        s.flush()
        # Their utterances go with their participant rows (ON DELETE CASCADE, index trigger).
        s.execute(delete(Participant).where(Participant.id.in_(part_ids)))
        # A call still being recorded is kept even if they were alone in it so far: its
        # pipeline goes on writing to it (others may speak yet) and closes it.
        active = set(
            s.scalars(
                select(CallSession.id).where(
                    CallSession.id.in_(session_ids), CallSession.status == SessionStatus.ACTIVE
                )
            )
        )
        empty = [
            sid
            for sid in session_ids
            if sid not in active
            and not s.scalar(select(func.count()).select_from(Participant).where(Participant.session_id == sid))
        ]
        if empty:
            s.execute(delete(CallSession).where(CallSession.id.in_(empty)))
        unowned = rowcount(s.execute(update(CallSession).where(CallSession.started_by == uid).values(started_by=None)))
        s.execute(delete(Voiceprint).where(Voiceprint.user_id == uid))
        _optimize(s)
    return Forgotten(
        user_id=uid,
        utterances=utterances,
        participants=len(part_ids),
        voiceprints=len(prints),
        suggestions_deleted=deleted_sugg,
        suggestions_readdressed=readdressed,
        labels_cleared=labels,
        sessions_deleted=len(empty),
        sessions_unowned=unowned,
        cleanup=scrub_file(db),
        summaries_dropped=[sid for sid in dropped if sid not in empty],
    )
