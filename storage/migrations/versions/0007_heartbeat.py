"""When a session's recorder last said it was still recording (sessions.heartbeat_at), so that
several processes, on several machines, can share one database: a process's clean-up at start
closes only the sessions whose recorder is gone, not another live process's.

Revision ID: 0007_heartbeat
Revises: 0006_summaries
Create Date: 2026-12-02

Self-contained like 0001: no import of storage.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_heartbeat"
down_revision: str | Sequence[str] | None = "0006_summaries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN (nullable, no default): SQLite does it in place, no table copy.
    op.add_column("sessions", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("heartbeat_at")
