"""Plain records the pipeline hands to storage; no SQLAlchemy types cross this boundary."""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.vocab import SessionSource, Verification


@dataclass(frozen=True)
class NewSession:
    source: SessionSource
    title: str | None = None
    language: str | None = None  # configured language code, or 'auto'
    asr_model: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    started_by: str | None = None  # Discord user id of whoever started the call


@dataclass(frozen=True)
class UtteranceRecord:
    session_id: int
    participant_id: int
    start: float  # call time, seconds
    end: float
    transcribed_at: float  # call time when the text became available
    text: str
    language: str | None = None
    language_probability: float | None = None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    speaker_score: float | None = None
    verification: Verification | None = None  # None: not checked
    speaker_label: str | None = None


@dataclass(frozen=True)
class SuggestionRecord:
    session_id: int
    at: float  # call time
    text: str
    source: str  # model name, or 'fallback'
    recipients: list[str] = field(default_factory=list)
    language: str | None = None
