"""Which process records a call, so that a call a crash left 'active' can be told apart from
one still being recorded.

Revision ID: 0005_recorder
Revises: 0004_bot
Create Date: 2026-11-22

Self-contained like 0001: no import of storage.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_recorder"
down_revision: str | Sequence[str] | None = "0004_bot"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, no table copy.
    op.add_column("sessions", sa.Column("recorder", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("recorder")
