"""Which process records a call, and whether it still runs.

A session row is 'active' from its start until its pipeline closes it. A process that dies
(SIGKILL, power cut, a full disk that refused even the final update) leaves it 'active'
for good, and nothing could tell it from a call in progress: the bot closed every 'active'
session at start (a replay running meanwhile included) and ``logs delete`` refused them all.

Each session therefore records its recorder: ``host/boot/pidns:pid:start``, the machine's name,
boot id and pid namespace (containers on one host), the process id, and the process's start time (so a reused pid is not mistaken for
the recorder). ``state`` then says ``alive``, ``gone`` (on this machine and boot, that process
no longer runs) or ``unknown`` (another machine, or a row from before this was recorded).

Where the pid cannot be checked (another machine, another container), the session's
heartbeat decides (``liveness``): every live recorder refreshes ``sessions.heartbeat_at`` of its
active sessions every ``BEAT_S`` seconds (``storage.heartbeat``); one not refreshed for
``STALE_AFTER_S`` is taken as gone. This compares one machine's clock with another's: they
must agree to well within that margin (NTP).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path

BEAT_S = 30.0  # how often a live recorder refreshes its sessions' heartbeat
STALE_AFTER_S = 150.0  # a heartbeat older than this (five missed beats) is a recorder that is gone


class RecorderState(StrEnum):
    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "-"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or '-' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "-"
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_namespace() -> str:
    """Which pid namespace this process is in: containers on one host may share its host name
    (host networking) and boot id, and each have its own pid 1."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


@cache
def _machine() -> str:
    return f"{socket.gethostname()[:100]}/{_boot_id()}/{_pid_namespace()}"


def this_process() -> str:
    """The recorder id of the running process (the pid is looked up each time: a fork differs)."""
    pid = os.getpid()
    return f"{_machine()}:{pid}:{_start_time(pid)}"


def describe(recorder: str | None) -> str:
    """For messages: "process 1234 on host", or "an older S-Talk" for a row without one."""
    if not recorder:
        return "an S-Talk that did not record its process id"
    machine, pid, _ = _split(recorder)
    return f"process {pid} on {machine.split('/')[0]}"


def _split(recorder: str) -> tuple[str, str, str]:
    """(machine, pid, start time) of a recorder id (a host name holds no ':')."""
    parts = recorder.rsplit(":", 2)
    if len(parts) != 3:
        return recorder, "?", "-"
    return parts[0], parts[1], parts[2]


def state(recorder: str | None) -> RecorderState:
    """Whether the process that recorded (or records) a session still runs."""
    if not recorder:
        return RecorderState.UNKNOWN
    machine, pid_text, started = _split(recorder)
    if machine != _machine() or not pid_text.isdigit():
        return RecorderState.UNKNOWN
    pid = int(pid_text)
    if started != "-":
        now = _start_time(pid)
        if now == "-":  # /proc says no such process (or /proc is gone: then we cannot tell)
            return RecorderState.GONE if Path("/proc/self/stat").exists() else RecorderState.UNKNOWN
        return RecorderState.ALIVE if now == started else RecorderState.GONE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return RecorderState.GONE
    except PermissionError:
        return RecorderState.ALIVE  # someone else's process with that pid runs
    return RecorderState.ALIVE


def liveness(
    recorder: str | None,
    heartbeat_at: datetime | None,
    *,
    now: datetime | None = None,
    stale_after_s: float = STALE_AFTER_S,
) -> RecorderState:
    """Whether a session's recorder still records it: on this machine its process decides
    (``state``); elsewhere its heartbeat, fresh (alive) or older than ``stale_after_s`` (gone);
    with neither (a row from an S-Talk before heartbeats) it cannot be told (unknown)."""
    st = state(recorder)
    if st != RecorderState.UNKNOWN or heartbeat_at is None or not recorder:
        return st
    age = (now or datetime.now(UTC)) - heartbeat_at
    return RecorderState.ALIVE if age <= timedelta(seconds=stale_after_s) else RecorderState.GONE
