"""Several S-Talk processes sharing one PostgreSQL database (issue 18): real processes
(tests/shared_db_worker.py, the storage layer's start-up exactly as ``python -m bot run`` does
it) on a throwaway server started by this module.

Two processes let go at the same moment both migrate a fresh database (an advisory lock makes
the second wait and then find the work done), both close stale sessions and purge expired calls
at once (each call is closed, and each deleted, by exactly one of them), both record a call;
a third process starting meanwhile closes only the session whose recorder stopped beating,
never the live calls of the other two (which, claiming other host names, it can only tell
alive by their heartbeat).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, insert, select, text, update

from storage import open_database
from storage.migrate import head_revision
from storage.models import CallSession, Participant, Utterance, utcnow
from storage.recorder import CallRecorder
from storage.recorders import STALE_AFTER_S
from storage.records import NewSession
from tests.logs.test_postgres import pg_url  # noqa: F401 (the throwaway server, a fixture)
from tests.processes import REPO

pytestmark = pytest.mark.slow  # real processes, each importing SQLAlchemy and Alembic

EXPIRED = 450  # more than one retention batch (200)


@pytest.fixture
def fresh_url(pg_url, request):  # noqa: F811
    """A database of its own on the module's server, empty: nobody has migrated it yet."""
    name = "shared_" + request.node.name.lower().replace("-", "_")[:40]
    admin = create_engine(pg_url.replace("/stalk?", "/postgres?"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return pg_url.replace("/stalk?", f"/{name}?")


class Worker:
    def __init__(self, url: str, host: str) -> None:
        self.host = host
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.shared_db_worker", url, "--host", host],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(60)
            raise AssertionError(f"worker on {self.host} exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return line.strip()

    def finish(self) -> str:
        self.send("finish")
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err
        return out.strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _seed(db, count: int) -> tuple[list[int], int]:
    """``count`` finished calls older than any retention period, each with an utterance; and a
    session left active by a process on another machine that stopped beating long ago."""
    old = utcnow() - timedelta(days=400)
    with db.session() as s, s.begin():
        ids = [
            s.execute(
                insert(CallSession)
                .values(source="discord", status="completed", started_at=old, ended_at=old, guild_id="7")
                .returning(CallSession.id)
            ).scalar_one()
            for _ in range(count)
        ]
        people = [
            s.execute(
                insert(Participant).values(session_id=i, name="old", joined_at=0.0).returning(Participant.id)
            ).scalar_one()
            for i in ids
        ]
        s.execute(
            insert(Utterance),
            [
                dict(session_id=i, participant_id=p, start=0.0, end=1.0, transcribed_at=1.5, created_at=old, text="old")
                for i, p in zip(ids, people)
            ],
        )
    crashed = CallRecorder(db).start_session(NewSession(source="discord", title="crashed elsewhere", guild_id="7"))
    from storage import heartbeat

    heartbeat.release(db, crashed)  # this (test) process does not record it
    with db.session() as s, s.begin():
        s.execute(
            update(CallSession)
            .where(CallSession.id == crashed)
            .values(
                recorder="machine-gone/0b1d0000:4242:777",
                heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S * 4),
            )
        )
    return ids, crashed


def test_two_processes_share_one_database(fresh_url) -> None:
    a, b = Worker(fresh_url, "machine-a"), Worker(fresh_url, "machine-b")
    try:
        assert a.read() == "ready" and b.read() == "ready"
        # Both open (and so migrate) the empty database at once.
        a.send("go-open")
        b.send("go-open")
        assert a.read() == "opened" and b.read() == "opened"
        with open_database(fresh_url) as db:
            with db.session() as s:
                assert s.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
            expired, crashed = _seed(db, EXPIRED)

        # Both start at once: stale clean-up, retention, then each records a call.
        a.send("go-start")
        b.send("go-start")
        ra, rb = json.loads(a.read()), json.loads(b.read())
        assert ra["closed_stale"] + rb["closed_stale"] == 1  # the crashed session, closed once
        assert ra["purged"] + rb["purged"] == EXPIRED  # every expired call deleted, each once

        with open_database(fresh_url) as db:
            with db.session() as s:
                assert s.scalar(select(func.count()).where(CallSession.id.in_(expired))) == 0
                assert s.scalar(select(func.count()).select_from(Utterance).where(Utterance.text == "old")) == 0
                assert s.get(CallSession, crashed).status == "interrupted"
                for r, host in ((ra, "machine-a"), (rb, "machine-b")):
                    row = s.get(CallSession, r["session"])
                    assert row.status == "active" and host in row.recorder
                    said = s.scalars(select(Utterance.text).where(Utterance.session_id == r["session"])).all()
                    assert sorted(said) == [f"utterance {i} on {host}" for i in range(3)]

            # A third process (this one, as if on a third machine) starts meanwhile: the two
            # live calls have fresh heartbeats and stay active.
            assert CallRecorder(db).close_stale_sessions() == 0
            with db.session() as s:
                assert {s.get(CallSession, r["session"]).status for r in (ra, rb)} == {"active"}

            # One of them stops beating (its machine lost power, say): now it is closed.
            with db.session() as s, s.begin():
                s.execute(
                    update(CallSession)
                    .where(CallSession.id == ra["session"])
                    .values(heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S + 60))
                )
            assert CallRecorder(db).close_stale_sessions() == 1
            with db.session() as s:
                assert s.get(CallSession, ra["session"]).status == "interrupted"
                assert s.get(CallSession, rb["session"]).status == "active"

        assert b.finish() == "finished"
        assert a.finish() == "finished"  # closing a session someone else closed is no error
        with open_database(fresh_url) as db, db.session() as s:
            assert s.get(CallSession, rb["session"]).status == "completed"
    finally:
        a.kill()
        b.kill()


async def test_two_bot_processes_start_on_one_database(fresh_url) -> None:
    """``python -m bot run`` twice at once on the same PostgreSQL database (the REST stand-in
    for Discord, as in tests/bot/test_run_signals.py): both start (stale clean-up and the first
    retention purge run in both), reach the gateway, and stop cleanly on SIGTERM."""
    import asyncio
    import signal

    from tests.bot.discord_rest import DiscordRest
    from tests.processes import BOT_USER, start_bot_run

    with open_database(fresh_url) as db:
        expired, crashed = _seed(db, 20)
    rest = DiscordRest(bot_user=BOT_USER, application_id=2)
    await rest.start()
    procs = [await start_bot_run(rest.port, fresh_url, STALK_RETENTION_MAX_AGE_DAYS="30") for _ in range(2)]
    try:
        await rest.wait_for(lambda reqs: sum(r.path == "/gateway-ws" for r in reqs) >= 2, timeout=120)
        with open_database(fresh_url) as db:
            # The first purge runs on the retention thread; the crashed session was closed in
            # setup_hook, before either bot connected.
            with db.session() as s:
                assert s.get(CallSession, crashed).status == "interrupted"
        for p in procs:
            p.send_signal(signal.SIGTERM)
        results = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await rest.stop()
    for p, (_, err) in zip(procs, results):
        text_ = err.decode()
        assert p.returncode == 0, text_
        assert "Traceback" not in text_, text_
    with open_database(fresh_url) as db, db.session() as s:
        assert s.scalar(select(func.count()).where(CallSession.id.in_(expired))) == 0
