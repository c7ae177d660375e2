"""Schema migrations, run in-process at open time (no alembic.ini involved).

Developers add a revision with, e.g.::

    python -c "from alembic import command; from storage.migrate import alembic_config; \
command.revision(alembic_config('sqlite:///dev.db'), 'add x', autogenerate=True, rev_id='0002')"

after upgrading ``dev.db`` to head; then review the generated file by hand.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, inspect

from storage.errors import StorageError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    cfg = Config()
    # ConfigParser interpolation would eat a '%' in the install path.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations/versions is empty"
    return head


def current_revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def needs_upgrade(connection: Connection, label: str) -> bool:
    """Whether the schema at ``connection`` is behind head; read-only.

    Refuses, with a StorageError, a database written by a newer S-Talk (a revision this code
    does not know) and a non-empty database that S-Talk never created: migrating someone
    else's tables would damage them.
    """
    script = ScriptDirectory.from_config(alembic_config())
    current = current_revisions(connection)
    for rev in current:
        try:
            known = script.get_revision(rev)
        except CommandError:
            known = None
        if known is None:
            raise StorageError(
                f"database {label} has schema revision {rev!r}, newer than this version of S-Talk",
                "upgrade S-Talk, or pass --db with another database file",
            )
    if not current:
        tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
        if tables:
            raise StorageError(
                f"{label} is a database but not an S-Talk one (it has tables {', '.join(sorted(tables)[:5])})",
                "pass --db with a new file name or an existing S-Talk database",
            )
    return current != (script.get_current_head(),)


def upgrade_to_head(connection: Connection) -> None:
    """Run pending migrations inside the caller's transaction on ``connection``."""
    command.upgrade(alembic_config(connection=connection), "head")
