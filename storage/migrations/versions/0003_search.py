"""Full-text search over utterances; who started a call; indexes for access control.

Revision ID: 0003_search
Revises: 0001
Create Date: 2026-11-21

SQLite: an FTS5 table with the trigram tokenizer (matches any 3+ character substring, so it
works for Korean and Chinese, which have no spaces between words to tokenize on). It is an
external-content table over ``utterances`` (the text is not stored twice), kept in step by
triggers on insert, update and delete; existing rows are indexed here.

PostgreSQL: a pg_trgm GIN index on ``utterances.text`` that speeds up the ILIKE search the
queries use; if the extension cannot be created (no privilege) search still works, unindexed.
Other databases: no index, search uses LIKE.

Self-contained on purpose (no import of storage code): it must keep describing this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_search"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = (
    "CREATE VIRTUAL TABLE utterances_fts USING fts5("
    "text, content='utterances', content_rowid='id', tokenize='trigram')",
    # An external-content FTS5 table must be told the old text to remove it from the index.
    "CREATE TRIGGER utterances_fts_insert AFTER INSERT ON utterances BEGIN "
    "INSERT INTO utterances_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER utterances_fts_delete AFTER DELETE ON utterances BEGIN "
    "INSERT INTO utterances_fts(utterances_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER utterances_fts_update AFTER UPDATE OF id, text ON utterances BEGIN "
    "INSERT INTO utterances_fts(utterances_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO utterances_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO utterances_fts(utterances_fts) VALUES ('rebuild')",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS utterances_fts_update",
    "DROP TRIGGER IF EXISTS utterances_fts_delete",
    "DROP TRIGGER IF EXISTS utterances_fts_insert",
    "DROP TABLE IF EXISTS utterances_fts",
)


def upgrade() -> None:
    op.add_column("sessions", sa.Column("started_by", sa.String(32), nullable=True))
    op.create_index("ix_sessions_guild_id_started_at", "sessions", ["guild_id", "started_at"])
    op.create_index("ix_participants_user_id", "participants", ["user_id"])

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_UP:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        # A savepoint: a refused CREATE EXTENSION must not abort the migration's transaction.
        try:
            with bind.begin_nested():
                op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                op.execute("CREATE INDEX ix_utterances_text_trgm ON utterances USING gin (text gin_trgm_ops)")
        except sa.exc.DBAPIError:
            pass


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_utterances_text_trgm")
    op.drop_index("ix_participants_user_id", table_name="participants")
    op.drop_index("ix_sessions_guild_id_started_at", table_name="sessions")
    # Not batch mode: on SQLite that copies and drops ``sessions``, and dropping a table with
    # foreign keys on deletes its rows first, cascading to every participant and utterance.
    # SQLite 3.35+ drops a column in place.
    op.drop_column("sessions", "started_by")
