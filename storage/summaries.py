"""Stored call summaries: write one, read one with the transcript's access rule, drop one.

A summary is made above storage (``bot.summary``: a model, or the extractive fallback) and
handed here as plain records. Reading goes through ``storage.access.visible`` exactly as the
transcript does, so whoever may not read a call cannot read its summary either. It is deleted
with its call (ON DELETE CASCADE) and by ``storage.deletion.forget_user`` (a forgotten
person's words must leave it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from storage.access import Viewer, visible
from storage.db import Database, rowcount
from storage.models import CallSession, SummaryRow, utcnow
from storage.vocab import PointKind, SessionStatus


@dataclass(frozen=True)
class SummaryPoint:
    kind: PointKind
    text: str  # plain, one line, in the call's language
    refs: list[int]  # utterance ids the point came from
    speakers: list[str] = field(default_factory=list)  # who said it (decisions and to-dos)


@dataclass(frozen=True)
class SummaryRecord:
    session_id: int
    source: str  # model name, or 'extractive'
    language: str | None
    points: list[SummaryPoint]
    prompt_chars: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class SummaryInfo:
    session_id: int
    source: str
    language: str | None
    points: list[SummaryPoint]
    prompt_chars: int | None
    seconds: float | None
    created_at: datetime

    def of(self, kind: PointKind) -> list[SummaryPoint]:
        return [p for p in self.points if p.kind == kind]


def _point_json(p: SummaryPoint) -> dict[str, Any]:
    return {"kind": p.kind.value, "text": p.text, "refs": list(p.refs), "speakers": list(p.speakers)}


def _point(data: dict[str, Any]) -> SummaryPoint | None:
    try:
        kind = PointKind(str(data.get("kind")))
    except ValueError:
        return None  # a kind a newer S-Talk wrote: left out rather than guessed at
    return SummaryPoint(
        kind=kind,
        text=str(data.get("text") or ""),
        refs=[int(r) for r in data.get("refs") or []],
        speakers=[str(s) for s in data.get("speakers") or []],
    )


def summary_info(row: SummaryRow) -> SummaryInfo:
    return SummaryInfo(
        session_id=row.session_id,
        source=row.source,
        language=row.language,
        points=[p for p in (_point(d) for d in row.points or []) if p is not None],
        prompt_chars=row.prompt_chars,
        seconds=row.seconds,
        created_at=row.created_at,
    )


def save_summary(db: Database, record: SummaryRecord) -> SummaryInfo:
    """Store ``record`` as its call's summary, replacing any earlier one."""
    try:
        return _save(db, record)
    except IntegrityError:
        # Another process stored one for this call meanwhile (two bots on one database
        # summarising the same call): replace it, as for any earlier summary.
        return _save(db, record)


def _save(db: Database, record: SummaryRecord) -> SummaryInfo:
    with db.write_session() as s, s.begin():
        row = s.get(SummaryRow, record.session_id)
        if row is None:
            row = SummaryRow(session_id=record.session_id)
            s.add(row)
        row.source = record.source
        row.language = record.language
        row.points = [_point_json(p) for p in record.points]
        row.prompt_chars = record.prompt_chars
        row.seconds = record.seconds
        row.created_at = utcnow()
        s.flush()
        return summary_info(row)


def get_summary(db: Database, session_id: int, viewer: Viewer | None = None) -> SummaryInfo | None:
    """The call's summary; None when there is none, or no such call, or ``viewer`` may not
    see it (not told apart, as for the transcript). ``viewer`` None: the operator."""
    query = select(SummaryRow).join(CallSession, CallSession.id == SummaryRow.session_id)
    query = query.where(SummaryRow.session_id == session_id)
    if viewer is not None:
        query = query.where(visible(viewer))
    with db.session() as s:
        row = s.scalar(query)
        return None if row is None else summary_info(row)


def delete_summary(db: Database, session_id: int) -> bool:
    """Drop the call's summary; whether there was one."""
    with db.write_session() as s, s.begin():
        gone = s.execute(delete(SummaryRow).where(SummaryRow.session_id == session_id))
        return rowcount(gone) > 0


def without_model_summary(db: Database, since: datetime, fallback_source: str, *, limit: int = 20) -> list[int]:
    """Calls ended since ``since`` whose summary a model never wrote: none stored (a process
    that died mid-call; its session was closed at the next start) or only the fallback's
    (``fallback_source``: the model had not answered when the process stopped, or was down).
    Newest first, at most ``limit``."""
    query = (
        select(CallSession.id)
        .outerjoin(SummaryRow, SummaryRow.session_id == CallSession.id)
        .where(CallSession.status != SessionStatus.ACTIVE.value, CallSession.ended_at >= since)
        .where(or_(SummaryRow.session_id.is_(None), SummaryRow.source == fallback_source))
        .order_by(CallSession.ended_at.desc())
        .limit(limit)
    )
    with db.session() as s:
        return list(s.scalars(query))
