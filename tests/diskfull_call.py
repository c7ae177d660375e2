"""Run a replay whose database lies on a disk that fills up during the call; print a JSON report.

Meant to run inside its own mount namespace (``unshare --user --map-root-user --mount``, see
tests/test_disk_full.py), where it mounts a small tmpfs at ``MOUNT``: the database is created
there, the replay starts (in real time, twice as fast), and once the first utterance is
stored the rest of the tmpfs is filled with a file, as another program filling the disk would.
The working directory (for the recovery file) is elsewhere, on a disk with space.

    python tests/diskfull_call.py MOUNT WORKDIR TRACK...
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def fill(folder: Path) -> int:
    """Write a file until the disk is full; returns its size."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    written = 0
    for size in (1 << 16, 1 << 12, 1 << 9, 1):
        try:
            while True:
                written += os.write(fd, bytes(size))
        except OSError:
            pass
    os.close(fd)
    return written


def stored_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            return con.execute("SELECT count(*) FROM utterances").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> int:
    mount, workdir, *tracks = sys.argv[1:]
    mnt = Path(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    db = mnt / "calls.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "replay", "--speed", "2", "--db", str(db), *tracks],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while stored_count(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    filled = fill(mnt)
    out, err = proc.communicate(timeout=300)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        sessions = con.execute("SELECT id, status, error FROM sessions").fetchall()
        stored = con.execute("SELECT count(*) FROM utterances").fetchone()[0]
    report = {
        "code": proc.returncode,
        "out": out,
        "err": err,
        "filled": filled,
        "sessions": sessions,
        "stored": stored,
        "left_on_disk": sorted(p.name for p in mnt.iterdir()),
        "recovery": {p.name: json.loads(p.read_text()) for p in Path(workdir).glob("s-talk-unsaved-*.json")},
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
