"""Call summaries: one per call, its points with the utterances they came from.

Revision ID: 0006_summaries
Revises: 0005_recorder
Create Date: 2026-12-02

Self-contained like 0001: no import of storage.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_summaries"
down_revision: str | Sequence[str] | None = "0005_recorder"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "summaries",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("prompt_chars", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name="fk_summaries_session_id_sessions", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("session_id", name="pk_summaries"),
    )


def downgrade() -> None:
    op.drop_table("summaries")
