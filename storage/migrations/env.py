"""Alembic environment for S-Talk.

At runtime ``storage.db`` runs migrations in-process and hands over its own connection in
``config.attributes["connection"]``, so the PRAGMAs and locking behaviour are those of the
application's engine. Developers creating a revision use ``storage.migrate.alembic_config``
with a URL instead (see that module); no alembic.ini is shipped.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base
from storage.search import include_name

config = context.config
target_metadata = Base.metadata

_OPTIONS: dict[str, Any] = dict(
    target_metadata=target_metadata,
    # SQLite cannot ALTER most things; batch mode rewrites the table instead.
    render_as_batch=True,
    compare_type=True,
    compare_server_default=True,
    # The full-text index's virtual and shadow tables are created by SQL the models cannot
    # describe; only those exact names are skipped.
    include_name=include_name,
)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **_OPTIONS)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("no database: set sqlalchemy.url (see storage.migrate.alembic_config)")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **_OPTIONS)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
