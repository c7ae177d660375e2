"""Initial schema: sessions, participants, utterances, voiceprints, suggestions.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written by hand and self-contained (no import of storage.models): a migration must keep
describing the schema as it was at this revision even after the models move on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("guild_id", sa.String(32), nullable=True),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("asr_model", sa.String(200), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=False),
        sa.Column("ended_at", UTC_DATETIME, nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        sa.CheckConstraint("status IN ('active', 'completed', 'failed', 'interrupted')", name="ck_sessions_status"),
        sa.CheckConstraint("source IN ('replay', 'discord')", name="ck_sessions_source"),
    )
    op.create_index("ix_sessions_status", "sessions", ["status"])

    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("left_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_participants"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_participants_session_id_sessions", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_participants_session_id", "participants", ["session_id"])

    op.create_table(
        "utterances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("transcribed_at", sa.Float(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("language_probability", sa.Float(), nullable=True),
        sa.Column("avg_logprob", sa.Float(), nullable=True),
        sa.Column("no_speech_prob", sa.Float(), nullable=True),
        sa.Column("compression_ratio", sa.Float(), nullable=True),
        sa.Column("speaker_score", sa.Float(), nullable=True),
        sa.Column("verification", sa.String(16), nullable=True),
        sa.Column("speaker_label", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_utterances"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_utterances_session_id_sessions", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name="fk_utterances_participant_id_participants",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint('"end" >= start', name="ck_utterances_time_order"),
        sa.CheckConstraint(
            "verification IS NULL OR verification IN ('verified', 'mismatch', 'unknown')",
            name="ck_utterances_verification",
        ),
    )
    op.create_index("ix_utterances_session_id_start", "utterances", ["session_id", "start"])
    op.create_index("ix_utterances_participant_id", "utterances", ["participant_id"])

    op.create_table(
        "voiceprints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=True),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.Column("speech_seconds", sa.Float(), nullable=False),
        sa.Column("scoring", sa.JSON(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_voiceprints"),
        sa.UniqueConstraint("name", name="uq_voiceprints_name"),
    )
    op.create_index("ix_voiceprints_user_id", "voiceprints", ["user_id"])

    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_suggestions"),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_suggestions_session_id_sessions", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_suggestions_session_id", "suggestions", ["session_id"])


def downgrade() -> None:
    op.drop_table("suggestions")
    op.drop_table("voiceprints")
    op.drop_table("utterances")
    op.drop_table("participants")
    op.drop_table("sessions")
