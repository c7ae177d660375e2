"""Database schema: SQLAlchemy 2.0 typed declarative models.

Two clocks appear here, on purpose:

* *call time* (``float`` seconds since the call started) places speech on the call's own
  timeline; it is what a transcript is read against and is immune to wall-clock jumps;
* *wall clock* (timezone-aware UTC ``datetime``) says when something happened in the world.

Any change here needs a new migration in ``storage/migrations/versions``; the test suite
compares these models with the migrated schema and fails on any difference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.vocab import FINAL_STATUSES as VOCAB_FINAL_STATUSES
from storage.vocab import ConsentChoice, ConsentMode, SessionSource, SessionStatus, Verification, values

# The CHECK constraints' lists: plain strings, the vocabularies' values (storage.vocab).
SESSION_SOURCES = values(SessionSource)
SESSION_STATUSES = values(SessionStatus)
FINAL_STATUSES = tuple(s.value for s in VOCAB_FINAL_STATUSES)
VERIFICATIONS = values(Verification)
CONSENT_MODES = values(ConsentMode)
CONSENT_CHOICES = values(ConsentChoice)

# Named constraints: SQLite can only ALTER by copying a table (alembic batch mode), and
# batch mode can only drop or alter a constraint it can name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend.

    SQLite has no timezone storage and hands back naive values; storing UTC and re-attaching
    the zone on the way out keeps every datetime the application sees comparable. Naive input
    is refused rather than guessed at: local-vs-UTC mix-ups are silent and permanent.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        bytes: LargeBinary(),
    }


class CallSession(Base):
    """One call: a Discord voice session or a ``replay`` of recorded audio."""

    __tablename__ = "sessions"
    __table_args__ = (
        CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
        CheckConstraint(_in("source", SESSION_SOURCES), name="source"),
        # `/log list` and autocomplete: a guild's calls, newest first.
        Index("ix_sessions_guild_id_started_at", "guild_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    guild_id: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    # Discord user id of whoever started the call: besides administrators, only they may
    # delete it for everyone.
    started_by: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default=SessionStatus.ACTIVE.value)
    error: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    asr_model: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration: Mapped[float | None] = mapped_column(Float)
    # The process recording the call while it is active (storage.recorders): whether a call
    # left 'active' is still being recorded or was left by a process that died.
    recorder: Mapped[str | None] = mapped_column(String(200))
    # When the recorder last said it still records (storage.heartbeat): what tells another
    # machine's live process from one that died, where the pid cannot be checked.
    heartbeat_at: Mapped[datetime | None]

    # passive_deletes: the database's ON DELETE CASCADE does the work instead of the ORM
    # loading every utterance of a long call just to delete it.
    participants: Mapped[list[Participant]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Participant.id",
    )
    utterances: Mapped[list[Utterance]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(Utterance.start, Utterance.id)",
    )
    suggestions: Mapped[list[Suggestion]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(Suggestion.at, Suggestion.id)",
    )
    summary: Mapped[SummaryRow | None] = relationship(
        back_populates="session", cascade="all, delete-orphan", passive_deletes=True
    )


class Participant(Base):
    """Someone heard in a call: a ``replay`` NAME or a Discord member."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # Discord snowflakes exceed what some JSON consumers hold exactly in a number.
    # Indexed: access control asks "did this user attend" for every listed call.
    user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    joined_at: Mapped[float] = mapped_column(Float, default=0.0)
    left_at: Mapped[float | None] = mapped_column(Float)

    session: Mapped[CallSession] = relationship(back_populates="participants")
    utterances: Mapped[list[Utterance]] = relationship(
        back_populates="participant",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Utterance(Base):
    """One transcribed stretch of one participant's speech."""

    __tablename__ = "utterances"
    __table_args__ = (
        Index("ix_utterances_session_id_start", "session_id", "start"),
        CheckConstraint('"end" >= start', name="time_order"),
        CheckConstraint(f"verification IS NULL OR {_in('verification', VERIFICATIONS)}", name="verification"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"),
        index=True,
    )
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    transcribed_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(16))
    language_probability: Mapped[float | None] = mapped_column(Float)
    avg_logprob: Mapped[float | None] = mapped_column(Float)
    no_speech_prob: Mapped[float | None] = mapped_column(Float)
    compression_ratio: Mapped[float | None] = mapped_column(Float)
    speaker_score: Mapped[float | None] = mapped_column(Float)
    verification: Mapped[str | None] = mapped_column(String(16))
    speaker_label: Mapped[str | None] = mapped_column(String(100))

    session: Mapped[CallSession] = relationship(back_populates="utterances")
    participant: Mapped[Participant] = relationship(back_populates="utterances")


class Voiceprint(Base):
    """An enrolled speaker embedding, tied to the model that produced it.

    Embeddings from different models are not comparable, so ``model_id`` (e.g. the sha256
    of the model file) is stored with every voiceprint.
    """

    __tablename__ = "voiceprints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    model_id: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(200))
    dim: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[bytes]  # float32 little-endian, ``dim`` values
    segments: Mapped[int] = mapped_column(Integer)
    speech_seconds: Mapped[float] = mapped_column(Float)
    scoring: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Suggestion(Base):
    """A topic suggestion S-Talk made during a lull."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(200))  # model name, or 'fallback'
    language: Mapped[str | None] = mapped_column(String(16))
    recipients: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[CallSession] = relationship(back_populates="suggestions")


class SummaryRow(Base):
    """A call's summary: a few points (topics, decisions, to-dos, open questions), each with
    the utterances it came from. One per call; made again (replaced) on demand."""

    __tablename__ = "summaries"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(200))  # model name, or 'extractive'
    language: Mapped[str | None] = mapped_column(String(16))
    # [{"kind": PointKind, "text": str, "speakers": [name], "refs": [utterance id]}]
    points: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    prompt_chars: Mapped[int | None] = mapped_column(Integer)  # largest prompt sent (None: no model)
    seconds: Mapped[float | None] = mapped_column(Float)  # how long making it took
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[CallSession] = relationship(back_populates="summary")


class GuildSettings(Base):
    """A Discord guild's choices for the bot; NULL means "not chosen": the config default applies."""

    __tablename__ = "guild_settings"
    __table_args__ = (
        CheckConstraint(f"consent_mode IS NULL OR {_in('consent_mode', CONSENT_MODES)}", name="consent_mode"),
    )

    guild_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    consent_mode: Mapped[str | None] = mapped_column(String(16))
    live_transcript: Mapped[bool | None] = mapped_column(Boolean)
    manager_role_id: Mapped[str | None] = mapped_column(String(32))
    transcript_channel_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserSettings(Base):
    """A Discord user's own choices, the same in every guild."""

    __tablename__ = "user_settings"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    hints: Mapped[bool] = mapped_column(Boolean, default=False)
    # The call's summary by DM when a call they were in ends (/summary on|off); NULL: off.
    summary_dm: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GuildConsent(Base):
    """A user's /optin or /optout in one guild (the latest one counts)."""

    __tablename__ = "guild_consents"
    __table_args__ = (CheckConstraint(_in("choice", CONSENT_CHOICES), name="choice"),)

    guild_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    choice: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
