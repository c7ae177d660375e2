"""The PostgreSQL path (ILIKE search with a pg_trgm index) on a throwaway local server.

Skipped, saying why, where no PostgreSQL server binaries or no psycopg are installed
(.ci/run installs both).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from storage import get_session, list_sessions, open_database
from storage.access import Viewer
from storage.deletion import delete_session, forget_user
from storage.migrate import alembic_config
from storage.queries import find_sessions, list_page
from storage.search import search
from tests.logs.conftest import copy_call
from tests.logs.test_access import ADMIN_SEES, MEMBER_SEES, SAID
from tests.logs.test_search import oracle

OPERATOR = Viewer.cli_operator()


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        run_as = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's temporary folder: that is private to root, and the server runs as
    # the 'postgres' user when we are root. Removed below.
    folder = Path(tempfile.mkdtemp(prefix="stalk-pg-", dir="/tmp"))
    if run_as:
        shutil.chown(folder, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    try:
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(folder / "log"),
                "-o",
                f"-k {folder} -p {port} -c listen_addresses=''",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        admin = create_engine(
            f"postgresql+psycopg://postgres@/postgres?host={folder}&port={port}", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE stalk"))
        admin.dispose()
        yield f"postgresql+psycopg://postgres@/stalk?host={folder}&port={port}"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(pg_url, library):
    """The library's replayed calls recorded again in PostgreSQL, same guilds and people."""
    with open_database(str(library.path)) as lite, open_database(pg_url) as db:
        ids = {}
        for key, sid in sorted(library.ids.items(), key=lambda kv: kv[1]):
            detail = get_session(lite, sid)
            people = {p.name: (p.name, p.user_id) for p in detail.participants}
            ids[key] = copy_call(
                db, detail, guild=detail.guild_id, title=detail.title, started_by=detail.started_by, people=people
            )
    db = open_database(pg_url)
    yield db, ids
    db.close()


def test_migration_made_the_trigram_index_and_models_match(pg) -> None:
    db, _ = pg
    with db.engine.connect() as conn:
        indexes = {r[0] for r in conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'utterances'"))}
        assert "ix_utterances_text_trgm" in indexes
        assert conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")).scalar() == 1
        command.check(alembic_config(connection=conn))  # models == migrated schema, index aside


@pytest.mark.slow
def test_search_matches_the_substring_oracle(pg) -> None:
    db, ids = pg
    rows = [(s.id, u.id, u.text) for s in list_sessions(db, limit=100) for u in get_session(db, s.id).utterances]
    cjk = [t for sid, _, t in rows if sid in (ids["zh_g1"], ids["ko_g3"])]
    terms = {t[i : i + n].strip() for t in cjk for n in (1, 2, 3, 5) for i in range(0, len(t) - n + 1, 3)}
    words = {w.strip(".,?!") for _, _, t in rows for w in t.split()}
    for term in sorted((terms | words | {"RECITER", "%", "_", "\\", "zebra", "鳄鱼"}) - {""}):
        q = f'"{term}"' if '"' not in term else term
        hits = search(db, OPERATOR, q, page_size=1000)
        assert {h.utterance_id for h in hits.items} == oracle(rows, q), term


def test_access_matrix(pg) -> None:
    db, ids = pg
    names = {v: k for k, v in ids.items()}
    for (user, guild), sees in MEMBER_SEES.items():
        for admin in (False, True):
            viewer = Viewer.member(user, guild, is_admin=admin)
            expected = ADMIN_SEES[guild] if admin else sees
            assert {names[s.id] for s in list_page(db, viewer, page_size=100).items} == expected
            assert {names[c.id] for c in find_sessions(db, viewer)} == expected
            for word in set(SAID.values()):
                hits = search(db, viewer, word, page_size=100).items
                assert {names[h.session_id] for h in hits} == {k for k in expected if SAID[k] == word}


def test_delete_and_forget(pg) -> None:
    db, ids = pg
    assert delete_session(db, Viewer.member("u2", "G1"), ids["en_g1"]).status == "forbidden"
    assert delete_session(db, Viewer.member("u3", "G1"), ids["zh_g1"]).status == "deleted"
    assert {h.session_id for h in search(db, OPERATOR, "通车").items} == {ids["zh_g2"]}
    result = forget_user(db, "u2")
    assert result.participants == 1 and result.voiceprints == 0
    assert [p.name for p in get_session(db, ids["en_g1"]).participants] == ["alice"]
    assert {h.session_id for h in search(db, OPERATOR, "reciter", page_size=100).items} == {ids["en_g2"]}


def test_downgrade_and_upgrade(pg_url, pg) -> None:
    db, ids = pg
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), "0001")
        assert (
            conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_utterances_text_trgm'")).scalar()
            == 0
        )
    engine.dispose()
    with open_database(pg_url) as again:
        assert search(again, OPERATOR, "법원").total == 1


def test_a_traditional_query_finds_simplified_text(pg) -> None:
    """The library's Mandarin is stored in Simplified (AISHELL's references); the same words
    typed in Traditional find it, short (ILIKE) and long (trigram index) alike."""
    db, ids = pg
    zh = {ids["zh_g1"], ids["zh_g2"]}
    for simplified, traditional in (("协会", "協會"), ("广州市房地产", "廣州市房地產")):
        found = search(db, OPERATOR, simplified, page_size=100).items
        expected = {h.utterance_id for h in found}
        hits = search(db, OPERATOR, traditional, page_size=100).items
        assert expected and {h.utterance_id for h in hits} == expected
        # Only the Mandarin calls hold these words (earlier tests of this module may have
        # deleted one of them, so not necessarily both).
        assert {h.session_id for h in hits} == {h.session_id for h in found} and {h.session_id for h in hits} <= zh
