"""Opening the database: URL handling, SQLite settings, migrations, readable errors."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import URL, CursorResult, Engine, Result, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from storage.errors import StorageError
from storage.migrate import needs_upgrade, upgrade_to_head

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 5.0
# PostgreSQL advisory lock keys (64-bit, one namespace per database): "S-Talk" + a purpose.
MIGRATION_LOCK = 0x53_54_61_6C_6B_00_00_01
_BEGIN_OPTION = "stalk_sqlite_begin"


@dataclass
class Database:
    """An open S-Talk database whose schema is at head.

    ``session()`` is for reading and ordinary writes; ``write_session()`` takes SQLite's write
    lock when the transaction begins rather than at its first write, so a concurrent writer
    makes it wait (busy timeout) instead of failing mid-transaction.
    """

    engine: Engine
    url: str
    label: str
    _sessions: sessionmaker[Session] = field(repr=False)
    _write_sessions: sessionmaker[Session] = field(repr=False)
    _identity: tuple[Path, tuple[int, int]] | None = field(default=None, repr=False)  # SQLite file: (path, dev/inode)
    # Run by close() before the engine goes: what works on this database in the background
    # (storage.heartbeat's thread) stops with it.
    _on_close: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def session(self) -> Session:
        return self._sessions()

    def write_session(self) -> Session:
        return self._write_sessions()

    def close(self) -> None:
        while self._on_close:
            self._on_close.pop()()
        self.engine.dispose()

    def on_close(self, callback: Callable[[], None]) -> None:
        self._on_close.append(callback)

    @property
    def path(self) -> Path | None:
        """The file of a SQLite database on disk; None for a server or an in-memory database."""
        return self._identity[0] if self._identity else None

    def missing(self) -> str | None:
        """Why the database file is no longer where it was opened (deleted, moved, replaced),
        or None. SQLite goes on writing to a deleted file without an error, and everything
        written then is gone once the program exits: a call checks this before it counts as stored."""
        if self._identity is None:
            return None
        path, ident = self._identity
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"{path} was deleted or moved away"
        except OSError as exc:
            return f"{path} cannot be reached ({exc.strerror or exc})"
        if (st.st_dev, st.st_ino) != ident:
            return f"{path} was replaced by another file"
        return None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_database(
    url_or_path: str,
    *,
    create: bool = True,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
) -> Database:
    """Open (creating if allowed) and migrate the database at a file path or SQLAlchemy URL.

    Every failure a user can cause is raised as a StorageError saying what and how to fix it.
    ``busy_timeout`` is how long SQLite waits for another connection's lock per statement.
    """
    url, label = _resolve(url_or_path, create=create)
    engine = _create_engine(url, label, busy_timeout)
    try:
        _migrate(engine, label)
    except StorageError:
        engine.dispose()
        raise
    except DBAPIError as exc:
        engine.dispose()
        raise describe_error(exc, label) from exc
    write_engine = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    identity = None
    if url.get_backend_name() == "sqlite" and not _is_sqlite_memory(url) and url.database:
        try:
            st = Path(url.database).stat()
            identity = (Path(url.database), (st.st_dev, st.st_ino))
        except OSError:
            pass
    return Database(
        engine=engine,
        url=url.render_as_string(hide_password=True),
        label=label,
        _sessions=sessionmaker(engine, expire_on_commit=False),
        _write_sessions=sessionmaker(write_engine, expire_on_commit=False),
        _identity=identity,
    )


def _migrate(engine: Engine, label: str) -> None:
    # Check in a plain read first: an up-to-date database is the common case, and in WAL mode
    # a read does not wait for the bot's writer, so `logs` works during a call.
    with engine.connect() as conn:
        if not needs_upgrade(conn, label):
            return
    # IMMEDIATE takes the write lock up front: two processes migrating the same fresh file
    # queue behind each other, and the second then sees the work already done. PostgreSQL
    # has no such lock: an advisory lock held to the end of the transaction does the same
    # for processes starting at once (its DDL is transactional, so the second then sees the
    # first's whole upgrade or none of it).
    with engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        if needs_upgrade(conn, label):
            upgrade_to_head(conn)


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _resolve(url_or_path: str, *, create: bool) -> tuple[URL, str]:
    """Turn the user's --db value into a URL plus a label to name it by in messages."""
    if "://" in url_or_path:
        try:
            url = make_url(url_or_path)
        except ArgumentError as exc:
            raise StorageError(
                f"{url_or_path!r} is not a valid database URL",
                "pass a file path or a SQLAlchemy URL such as sqlite:///calls.db",
            ) from exc
        if url.get_backend_name() != "sqlite" or _is_sqlite_memory(url) or url.query.get("uri"):
            return url, url.render_as_string(hide_password=True)
        path = Path(url.database or "")
    else:
        url = URL.create("sqlite")
        path = Path(url_or_path)
    path = path.expanduser().absolute()
    _check_sqlite_path(path, create=create)
    return url.set(database=str(path)), str(path)


def _check_sqlite_path(path: Path, *, create: bool) -> None:
    if path.is_dir():
        raise StorageError(f"database path {path} is a directory", "pass a file path with --db")
    if path.exists():
        return
    if not create:
        raise StorageError(
            f"no database at {path}",
            "run `python -m bot replay ...` first, or pass --db with an existing database",
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create directory {path.parent} for the database ({exc.strerror or exc})",
            "choose a writable location with --db or [storage] url",
        ) from exc


def _create_engine(url: URL, label: str, busy_timeout: float) -> Engine:
    kwargs: dict[str, Any] = {}
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite:
        # pysqlite's own timeout is its busy handler; the PRAGMA below states it explicitly.
        kwargs["connect_args"] = {"timeout": busy_timeout}
        if _is_sqlite_memory(url):
            # One shared connection, or each checkout would see a fresh empty database.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise StorageError(
            f"unknown or uninstalled database driver {url.drivername!r} in {label}",
            "use a file path (SQLite) or install the driver named in the URL",
        ) from exc
    if sqlite:
        _install_sqlite_hooks(engine, busy_timeout)
    return engine


def _install_sqlite_hooks(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Take transaction control away from the sqlite3 module, which would otherwise run
        # DDL outside any transaction (a crash mid-migration would leave half a schema) and
        # delay BEGIN in ways that defeat the busy timeout; the "begin" hook issues BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            # WAL: readers (``logs``) never block the bot's writer, nor the writer them.
            mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                log.debug("SQLite journal_mode is %s, not wal", mode)
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted calls must not survive in free pages of the file: SQLite overwrites
            # deleted content with zeros (storage.deletion then checkpoints the WAL).
            cur.execute("PRAGMA secure_delete=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


_LOCKED = ("database is locked", "database table is locked", "database is busy")


def is_locked_error(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(marker in text for marker in _LOCKED)


def describe_error(exc: DBAPIError, label: str) -> StorageError:
    """One actionable line for a driver error raised while opening ``label``."""
    text = str(exc.orig).lower()
    if is_locked_error(exc):
        return StorageError(
            f"database {label} is locked by another process",
            "close the other program using it (another S-Talk, a DB browser), or pass --db with another file",
        )
    if "file is not a database" in text or "file is encrypted" in text:
        return StorageError(
            f"{label} is not a database (SQLite cannot read it)",
            "pass --db with a new file name or an existing S-Talk database",
        )
    if "readonly database" in text or "read-only" in text:
        return StorageError(
            f"database {label} is read-only",
            "make the file and its directory writable, or choose another location with --db",
        )
    if "unable to open database file" in text or "disk i/o error" in text:
        return StorageError(
            f"cannot open database file {label}",
            "check that its directory exists and is writable, or choose another location with --db",
        )
    return StorageError(f"database {label} failed: {exc.orig}", "check the --db value and the file")


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` is typed as returning a plain Result)."""
    return cast("CursorResult[Any]", result).rowcount
