"""Call summaries: one per call, its points with the utterances they came from; and whether a
user wants theirs by DM at the end of a call (user_settings.summary_dm, NULL: not chosen, off).

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
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, no table copy.
    op.add_column("user_settings", sa.Column("summary_dm", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("user_settings") as batch:
        batch.drop_column("summary_dm")
    op.drop_table("summaries")
