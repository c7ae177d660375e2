"""Read side shared by the CLI and (later) Discord slash commands.

Returns plain dataclasses, never ORM objects, so callers need no open session and cannot
trigger lazy loads after the database is closed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from storage.db import Database
from storage.models import CallSession, Participant, Suggestion, Utterance


@dataclass(frozen=True)
class SessionSummary:
    id: int
    source: str
    title: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration: float | None
    participants: list[str]
    utterance_count: int


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
    verification: str | None
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
    source: str
    title: str | None
    status: str
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


def list_sessions(
    db: Database, *, limit: int = 20, offset: int = 0, guild_id: str | None = None
) -> list[SessionSummary]:
    """Newest first."""
    counts = (
        select(Utterance.session_id, func.count().label("n"))
        .group_by(Utterance.session_id)
        .subquery()
    )
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
    with db.session() as s:
        return [
            SessionSummary(
                id=row.id, source=row.source, title=row.title, status=row.status,
                started_at=row.started_at, ended_at=row.ended_at, duration=row.duration,
                participants=[p.name for p in row.participants], utterance_count=int(n),
            )
            for row, n in s.execute(query).all()
        ]


def get_session(db: Database, session_id: int) -> SessionDetail | None:
    with db.session() as s:
        row = s.scalar(
            select(CallSession)
            .where(CallSession.id == session_id)
            .options(
                selectinload(CallSession.participants),
                selectinload(CallSession.utterances),
                selectinload(CallSession.suggestions),
            )
        )
        if row is None:
            return None
        names = {p.id: p.name for p in row.participants}
        return SessionDetail(
            id=row.id, source=row.source, title=row.title, status=row.status, error=row.error,
            language=row.language, asr_model=row.asr_model, guild_id=row.guild_id,
            channel_id=row.channel_id, started_at=row.started_at, ended_at=row.ended_at,
            duration=row.duration,
            participants=[_participant(p) for p in row.participants],
            utterances=[_utterance(u, names[u.participant_id]) for u in row.utterances],
            suggestions=[_suggestion(g) for g in row.suggestions],
        )


def _participant(p: Participant) -> ParticipantInfo:
    return ParticipantInfo(id=p.id, name=p.name, user_id=p.user_id, joined_at=p.joined_at, left_at=p.left_at)


def _utterance(u: Utterance, speaker: str) -> UtteranceInfo:
    return UtteranceInfo(
        id=u.id, speaker=speaker, participant_id=u.participant_id, start=u.start, end=u.end,
        transcribed_at=u.transcribed_at, created_at=u.created_at, text=u.text, language=u.language,
        language_probability=u.language_probability, avg_logprob=u.avg_logprob,
        no_speech_prob=u.no_speech_prob, compression_ratio=u.compression_ratio,
        speaker_score=u.speaker_score, verification=u.verification, speaker_label=u.speaker_label,
    )


def _suggestion(g: Suggestion) -> SuggestionInfo:
    return SuggestionInfo(
        id=g.id, at=g.at, text=g.text, source=g.source, language=g.language,
        recipients=list(g.recipients or []), created_at=g.created_at,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_VERIFIED = {"verified": True, "mismatch": False}


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
                # 'unknown' and not-checked both mean "no verdict": null, not false.
                "verified": _VERIFIED.get(u.verification or ""),
                "verification": u.verification,
                "speaker_label": u.speaker_label,
                "speaker_score": u.speaker_score,
            }
            for u in detail.utterances
        ],
        "suggestions": [
            {"at": _ms(g.at), "text": g.text, "source": g.source, "recipients": list(g.recipients)}
            for g in detail.suggestions
        ],
    }


def dump_session_json(detail: SessionDetail) -> str:
    # ensure_ascii=False: Korean and Chinese stay readable in the file, not \uXXXX escapes.
    return json.dumps(session_to_json(detail), ensure_ascii=False, indent=2) + "\n"
