"""``python -m bot run`` as a real process, stopped by real signals (issue 13: "python -m bot
run shares the shutdown path; check it too").

The process talks to the local Discord REST stand-in (tests/bot/discord_rest.py; its main
gateway accepts and stays silent) through discord.py's ``Route.BASE``, set by a small wrapper
around ``bot.cli.entry`` (what ``python -m bot`` runs), since the bot has no setting for
Discord's address. At its start the bot closes the sessions a crashed process left 'active',
and only those: one this test process is recording meanwhile stays active. SIGHUP, SIGTERM and a double Ctrl+C each end it cleanly: exit 0 (no
call was in progress), no traceback, no native abort.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from storage import get_session, open_database
from storage.recorder import CallRecorder
from storage.records import NewSession
from tests.bot.discord_rest import DiscordRest
from tests.processes import BOT_USER, dead_recorder, set_recorder, start_bot_run

# Each test here takes seconds (real handshakes, real time, or a replay): not in the fast subset.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "signals", [[signal.SIGHUP], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["hup", "term", "int-twice"]
)
async def test_bot_run_stops_cleanly_on_a_signal(tmp_path, signals) -> None:
    path = tmp_path / "bot.db"
    with open_database(str(path)) as db:
        crashed = CallRecorder(db).start_session(NewSession(source="discord", guild_id="1", channel_id="2"))
        set_recorder(db, crashed, dead_recorder())
        running = CallRecorder(db).start_session(NewSession(source="replay", title="running meanwhile"))

    rest = DiscordRest(bot_user=BOT_USER, application_id=2)
    await rest.start()
    proc = await start_bot_run(rest.port, str(path))
    try:
        await rest.wait_for(lambda reqs: any(r.path == "/gateway-ws" for r in reqs), timeout=120)
        for sig in signals:
            proc.send_signal(sig)
            await asyncio.sleep(0.2)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await rest.stop()
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text and "terminate called" not in text, text
    with open_database(str(path)) as db:
        assert get_session(db, crashed).status == "interrupted"
        assert get_session(db, running).status == "active"  # this process records it
