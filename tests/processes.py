"""Real processes for the tests of what happens when a call's process stops or dies."""

from __future__ import annotations

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
