"""Discord bot settings: per guild, per user, and per-guild consent choices.

Revision ID: 0004_bot
Revises: 0003_search
Create Date: 2026-11-21

Self-contained like 0001: no import of storage.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_bot"
down_revision: str | Sequence[str] | None = "0003_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.String(32), nullable=False),
        sa.Column("consent_mode", sa.String(16), nullable=True),
        sa.Column("live_transcript", sa.Boolean(), nullable=True),
        sa.Column("manager_role_id", sa.String(32), nullable=True),
        sa.Column("transcript_channel_id", sa.String(32), nullable=True),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name="pk_guild_settings"),
        sa.CheckConstraint(
            "consent_mode IS NULL OR consent_mode IN ('notice', 'opt_in')", name="ck_guild_settings_consent_mode"
        ),
    )
    op.create_table(
        "user_settings",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("hints", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_settings"),
    )
    op.create_table(
        "guild_consents",
        sa.Column("guild_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("choice", sa.String(8), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("guild_id", "user_id", name="pk_guild_consents"),
        sa.CheckConstraint("choice IN ('opt_in', 'opt_out')", name="ck_guild_consents_choice"),
    )
    op.create_index("ix_guild_consents_user_id", "guild_consents", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_guild_consents_user_id", table_name="guild_consents")
    op.drop_table("guild_consents")
    op.drop_table("user_settings")
    op.drop_table("guild_settings")
