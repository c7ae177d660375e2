"""Read side shared by the CLI and (later) Discord slash commands.

Returns plain dataclasses, never ORM objects, so callers need no open session and cannot
trigger lazy loads after the database is closed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import selectinload

from storage.access import Viewer, own_hints, visible
from storage.db import Database
from storage.models import CallSession, Participant, Suggestion, Utterance
from storage.paging import Page, budget_bounds, check_page, clamp, fixed_bounds, make_page
from storage.shape import HintAt, Shape, Spoken, conversation_shape
from storage.summaries import SummaryInfo, summary_info
from storage.vocab import SessionSource, SessionStatus, Verification


@dataclass(frozen=True)
class SessionSummary:
    id: int
    source: SessionSource
    title: str | None
    status: SessionStatus
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    participants: list[str]
    utterance_count: int
    guild_id: str | None = None
    started_by: str | None = None


@dataclass(frozen=True)
class ParticipantInfo:
    id: int
    name: str
    user_id: str | None
    joined_at: float
    left_at: float | None


@dataclass(frozen=True)
class UtteranceInfo:
    id: int
    speaker: str
    participant_id: int
    start: float
    end: float
    transcribed_at: float
    created_at: datetime
    text: str
    language: str | None
    language_probability: float | None
    avg_logprob: float | None
    no_speech_prob: float | None
    compression_ratio: float | None
    speaker_score: float | None
    verification: Verification | None
    speaker_label: str | None


@dataclass(frozen=True)
class SuggestionInfo:
    id: int
    at: float
    text: str
    source: str
    language: str | None
    recipients: list[str]
    created_at: datetime


@dataclass(frozen=True)
class SessionDetail:
    id: int
    source: SessionSource
    title: str | None
    status: SessionStatus
    error: str | None
    language: str | None
    asr_model: str | None
    guild_id: str | None
    channel_id: str | None
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    participants: list[ParticipantInfo]
    utterances: list[UtteranceInfo]
    suggestions: list[SuggestionInfo]
    started_by: str | None = None
    recorder: str | None = None  # the process recording it (storage.recorders)
    heartbeat_at: datetime | None = None  # when that process last said it still records it
    summary: SummaryInfo | None = None  # storage.summaries; None: not made (yet)


def list_sessions(
    db: Database,
    *,
    limit: int = 20,
    offset: int = 0,
    guild_id: str | None = None,
    viewer: Viewer | None = None,
) -> list[SessionSummary]:
    """Newest first; everything when ``viewer`` is None (the operator's command line)."""
    counts = select(Utterance.session_id, func.count().label("n")).group_by(Utterance.session_id).subquery()
    query = (
        select(CallSession, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.session_id == CallSession.id)
        .options(selectinload(CallSession.participants))
        .order_by(CallSession.started_at.desc(), CallSession.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if guild_id is not None:
        query = query.where(CallSession.guild_id == guild_id)
    if viewer is not None:
        query = query.where(visible(viewer))
    with db.session() as s:
        return [_summary(row, n) for row, n in s.execute(query).all()]


def _summary(row: CallSession, n: int) -> SessionSummary:
    return SessionSummary(
        id=row.id,
        source=SessionSource(row.source),
        title=row.title,
        status=SessionStatus(row.status),
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration=row.duration,
        participants=[p.name for p in row.participants],
        utterance_count=int(n),
        guild_id=row.guild_id,
        started_by=row.started_by,
    )


def list_page(db: Database, viewer: Viewer, *, page: int = 0, page_size: int = 10) -> Page[SessionSummary]:
    """The calls ``viewer`` may see, newest first, one page of them (``/log list``)."""
    check_page(page, page_size)
    with db.session() as s:
        total = int(s.scalar(select(func.count()).select_from(CallSession).where(visible(viewer))) or 0)
    bounds = fixed_bounds(total, page_size)
    page = clamp(page, bounds)
    items = list_sessions(db, limit=page_size, offset=page * page_size, viewer=viewer) if bounds else []
    return make_page(items, page, bounds, total)


def get_session(db: Database, session_id: int, viewer: Viewer | None = None) -> SessionDetail | None:
    """The whole call; None when it does not exist or ``viewer`` may not see it (the two are
    not told apart, so nobody learns which ids exist elsewhere). ``viewer`` None: everything."""
    query = select(CallSession).where(CallSession.id == session_id)
    if viewer is not None:
        query = query.where(visible(viewer))
    with db.session() as s:
        row = s.scalar(
            query.options(
                selectinload(CallSession.participants),
                selectinload(CallSession.utterances),
                selectinload(CallSession.suggestions),
                selectinload(CallSession.summary),
            )
        )
        if row is None:
            return None
        names = {p.id: p.name for p in row.participants}
        return SessionDetail(
            id=row.id,
            source=SessionSource(row.source),
            title=row.title,
            status=SessionStatus(row.status),
            error=row.error,
            language=row.language,
            asr_model=row.asr_model,
            guild_id=row.guild_id,
            channel_id=row.channel_id,
            started_at=row.started_at,
            ended_at=row.ended_at,
            duration=row.duration,
            participants=[_participant(p) for p in row.participants],
            utterances=[_utterance(u, names[u.participant_id]) for u in row.utterances],
            # Hint DMs are private: a member reads only their own (storage.access.own_hints).
            suggestions=own_hints(
                viewer, [(p.name, p.user_id) for p in row.participants], [_suggestion(g) for g in row.suggestions]
            ),
            started_by=row.started_by,
            recorder=row.recorder,
            heartbeat_at=row.heartbeat_at,
            summary=None if row.summary is None else summary_info(row.summary),
        )


def detail_shape(detail: SessionDetail) -> Shape:
    """The conversation's shape (``storage.shape``) from the call's rows; its hints are the
    ones ``detail`` holds, i.e. those its viewer may read."""
    return conversation_shape(
        [Spoken(u.id, u.speaker, u.start, u.end) for u in detail.utterances],
        [HintAt(g.at, g.text) for g in detail.suggestions],
        names=[p.name for p in detail.participants],
    )


# What a transcript line costs besides its text and speaker name when rendered
# ("`[1:02:03]` **name** ✓: " and the newline), for page budgets.
LINE_OVERHEAD = 24


@dataclass(frozen=True)
class TranscriptPage:
    session: SessionSummary
    utterances: Page[UtteranceInfo]


def show_page(
    db: Database,
    viewer: Viewer,
    session_id: int,
    *,
    page: int = 0,
    page_size: int = 15,
    max_chars: int | None = None,
    at_utterance: int | None = None,
) -> TranscriptPage | None:
    """One page of a call's transcript in call-time order (``/log show``); None when the call
    does not exist or ``viewer`` may not see it.

    A page holds at most ``page_size`` utterances and, with ``max_chars``, at most that many
    characters of speaker names, texts and ``LINE_OVERHEAD`` per line (4096 fits an embed).
    ``at_utterance`` (an utterance id, e.g. a search hit's) shows the page holding it
    instead of ``page``: the jump from a search result to the transcript.
    """
    check_page(page, page_size)
    order = (Utterance.start, Utterance.id)
    with db.session() as s:
        row = s.scalar(
            select(CallSession)
            .where(CallSession.id == session_id, visible(viewer))
            .options(selectinload(CallSession.participants))
        )
        if row is None:
            return None
        names = {p.id: p.name for p in row.participants}
        rows = s.execute(
            select(Utterance.id, Utterance.participant_id, func.length(Utterance.text))
            .where(Utterance.session_id == session_id)
            .order_by(*order)
        ).all()
        sizes = [int(n or 0) + len(names[pid]) + LINE_OVERHEAD for _, pid, n in rows]
        bounds = budget_bounds(sizes, page_size, max_chars)
        if at_utterance is not None:
            index = next((i for i, (uid, _, _) in enumerate(rows) if uid == at_utterance), None)
            if index is not None:
                page = next(n for n, (a, b) in enumerate(bounds) if a <= index < b)
        page = clamp(page, bounds)
        items: list[UtteranceInfo] = []
        if bounds:
            start, end = bounds[page]
            items = [
                _utterance(u, names[u.participant_id])
                for u in s.scalars(
                    select(Utterance)
                    .where(Utterance.session_id == session_id)
                    .order_by(*order)
                    .offset(start)
                    .limit(end - start)
                )
            ]
        return TranscriptPage(session=_summary(row, len(sizes)), utterances=make_page(items, page, bounds, len(sizes)))


@dataclass(frozen=True)
class SessionChoice:
    """An autocomplete entry: ``label`` fits Discord's 100-character choice name."""

    id: int
    label: str


def find_sessions(db: Database, viewer: Viewer, typed: str = "", *, limit: int = 25) -> list[SessionChoice]:
    """Recent calls ``viewer`` may see whose id starts with ``typed`` or whose title or a
    participant's name contains it (case-insensitive for ASCII); newest first."""
    typed = typed.strip().lstrip("#")
    query = select(CallSession).where(visible(viewer))
    if typed:
        pattern = "%" + like_escape(typed) + "%"
        named = (
            select(Participant.id)
            .where(Participant.session_id == CallSession.id, Participant.name.like(pattern, escape="\\"))
            .exists()
        )
        conditions = [CallSession.title.like(pattern, escape="\\"), named]
        if typed.isdigit():
            conditions.append(cast(CallSession.id, String).like(like_escape(typed) + "%", escape="\\"))
        query = query.where(or_(*conditions))
    query = (
        query.options(selectinload(CallSession.participants))
        .order_by(CallSession.started_at.desc(), CallSession.id.desc())
        .limit(limit)
    )
    with db.session() as s:
        return [SessionChoice(id=row.id, label=_choice_label(row)) for row in s.scalars(query)]


def _choice_label(row: CallSession) -> str:
    # UTC: the bot does not know the reader's time zone.
    what = row.title or ", ".join(p.name for p in row.participants) or row.source
    label = f"#{row.id} {row.started_at.strftime('%Y-%m-%d %H:%M')} UTC · {what}"
    return label if len(label) <= 100 else label[:99] + "…"


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ESCAPE '\\'."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _participant(p: Participant) -> ParticipantInfo:
    return ParticipantInfo(id=p.id, name=p.name, user_id=p.user_id, joined_at=p.joined_at, left_at=p.left_at)


def _utterance(u: Utterance, speaker: str) -> UtteranceInfo:
    return UtteranceInfo(
        id=u.id,
        speaker=speaker,
        participant_id=u.participant_id,
        start=u.start,
        end=u.end,
        transcribed_at=u.transcribed_at,
        created_at=u.created_at,
        text=u.text,
        language=u.language,
        language_probability=u.language_probability,
        avg_logprob=u.avg_logprob,
        no_speech_prob=u.no_speech_prob,
        compression_ratio=u.compression_ratio,
        speaker_score=u.speaker_score,
        verification=None if u.verification is None else Verification(u.verification),
        speaker_label=u.speaker_label,
    )


def _suggestion(g: Suggestion) -> SuggestionInfo:
    return SuggestionInfo(
        id=g.id,
        at=g.at,
        text=g.text,
        source=g.source,
        language=g.language,
        recipients=list(g.recipients or []),
        created_at=g.created_at,
    )


def _ms(seconds: float | None) -> float | None:
    # JSON has no Infinity or NaN: a value that is not finite (stored by an older S-Talk given
    # --speed inf) is null rather than a file no JSON parser reads.
    return None if seconds is None or not math.isfinite(seconds) else round(seconds, 3)


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_VERIFIED = {Verification.VERIFIED: True, Verification.MISMATCH: False}


def session_to_json(detail: SessionDetail) -> dict[str, Any]:
    """The export format of one call (``logs export --format json``)."""
    return {
        "session": {
            "id": detail.id,
            "source": detail.source,
            "title": detail.title,
            "status": detail.status,
            "error": detail.error,
            "language": detail.language,
            "asr_model": detail.asr_model,
            "started_at": _iso(detail.started_at),
            "ended_at": _iso(detail.ended_at),
            "duration": _ms(detail.duration),
        },
        "participants": [{"name": p.name, "user_id": p.user_id} for p in detail.participants],
        "utterances": [
            {
                "speaker": u.speaker,
                "start": _ms(u.start),
                "end": _ms(u.end),
                "text": u.text,
                "language": u.language,
                "transcribed_at": _ms(u.transcribed_at),
                # unknown and not checked both mean "no verdict": null, not false.
                "verified": None if u.verification is None else _VERIFIED.get(u.verification),
                "verification": u.verification,
                "speaker_label": u.speaker_label,
                "speaker_score": _finite(u.speaker_score),
            }
            for u in detail.utterances
        ],
        "suggestions": [
            {"at": _ms(g.at), "text": g.text, "source": g.source, "recipients": list(g.recipients)}
            for g in detail.suggestions
        ],
        "summary": summary_to_json(detail.summary),
        "shape": shape_to_json(detail_shape(detail)),
    }


def summary_to_json(summary: SummaryInfo | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "source": summary.source,
        "language": summary.language,
        "created_at": _iso(summary.created_at),
        "points": [
            {"kind": p.kind.value, "text": p.text, "speakers": list(p.speakers), "utterances": list(p.refs)}
            for p in summary.points
        ],
    }


def shape_to_json(shape: Shape) -> dict[str, Any]:
    longest = shape.longest
    quiet = shape.longest_silence
    return {
        "duration": _ms(shape.duration),
        "speech_seconds": _ms(shape.speech_seconds),
        "participants": [
            {
                "name": p.name,
                "talk_seconds": _ms(p.talk_seconds),
                "share": round(p.share, 4),
                "turns": p.turns,
                "utterances": p.utterances,
                "longest_turn_seconds": _ms(p.longest_turn_seconds),
            }
            for p in shape.participants
        ],
        "turns": shape.turns,
        "longest_stretch": None
        if longest is None
        else {"speaker": longest.speaker, "start": _ms(longest.start), "seconds": _ms(longest.seconds)},
        "answered": [{"speaker": a.speaker, "answered": a.other, "count": a.count} for a in shape.answers],
        "silences": {
            "threshold_seconds": shape.silence_seconds,
            "count": len(shape.silences),
            "longest": None if quiet is None else {"start": _ms(quiet.start), "seconds": _ms(quiet.seconds)},
        },
        "overlaps": len(shape.overlaps),
        "interruptions": [{"speaker": a.speaker, "interrupted": a.other, "count": a.count} for a in shape.interrupters],
        "hints": [
            {"at": _ms(h.at), "suggestions": list(h.texts), "resumed": h.resumed, "resumed_after": _ms(h.resumed_after)}
            for h in shape.hints
        ],
    }


def dump_session_json(detail: SessionDetail) -> str:
    # ensure_ascii=False: Korean and Chinese stay readable in the file, not \uXXXX escapes.
    return json.dumps(session_to_json(detail), ensure_ascii=False, indent=2, allow_nan=False) + "\n"
