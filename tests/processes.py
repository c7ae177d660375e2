"""Real processes for the tests of what happens when a call's process stops or dies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dead_recorder() -> str:
    """The recorder id (storage.recorders) of a process that has exited: what a crashed
    recorder leaves in its session row."""
    code = "from storage.recorders import this_process; print(this_process())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return out.stdout.strip()


def set_recorder(db, session_id: int, recorder: str | None, heartbeat_at=None) -> None:
    """Write a session's recorder as a crashed (or an older) S-Talk would have left it: by
    default with no heartbeat (an S-Talk before them, or one that never beat); from another
    machine a fresh ``heartbeat_at`` says its recorder still runs."""
    from sqlalchemy import update

    from storage.models import CallSession

    with db.session() as s, s.begin():
        s.execute(
            update(CallSession).where(CallSession.id == session_id).values(recorder=recorder, heartbeat_at=heartbeat_at)
        )


# The bot's own user, as the REST stand-in (tests/bot/discord_rest.py) reports it.
BOT_USER = {"id": "1", "username": "s-talk", "discriminator": "0", "avatar": None, "bot": True}


def _bot_run_code(port: int) -> str:
    """``python -m bot`` with discord.py's REST and gateway addresses pointed at the stand-in."""
    return (
        "import discord.gateway, discord.http, yarl, sys\n"
        f"discord.http.Route.BASE = 'http://127.0.0.1:{port}/api/v10'\n"
        f"discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL('ws://127.0.0.1:{port}/gateway-ws')\n"
        "import bot.cli\n"
        "raise SystemExit(bot.cli.entry())\n"
    )


async def start_bot_run(port: int, db: str, **settings: str) -> asyncio.subprocess.Process:
    """``python -m bot run --db DB`` as a real process against the REST stand-in on ``port``:
    none of this process's STALK_* settings, tiny.en on one worker, hints off, plus
    ``settings`` (STALK_* variables); its output piped."""
    from tests.calls import tiny_en_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith("STALK_")}
    env.update(
        PYTHONPATH=str(REPO),
        DISCORD_TOKEN="good-token",
        STALK_ASR_MODEL=tiny_en_dir(),
        STALK_ASR_WORKERS="1",
        STALK_HINTS_ENABLED="false",
        **settings,
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _bot_run_code(port),
        "run",
        "--db",
        db,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
