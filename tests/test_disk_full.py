"""A disk that fills up during a call, and exports onto a full disk (issue 13: "Disk full",
"logs export -o FILE on a full disk").

A real full disk: a 4 MiB tmpfs mounted in a mount namespace of the test's own
(``unshare --user --map-root-user --mount``, no root needed where unprivileged user namespaces
are allowed; skipped where they are not).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.calls import tiny_en_dir

REPO = Path(__file__).resolve().parents[1]
TRACKS = [f"alice={REPO / 'samples' / 'alice.flac'}", f"bob={REPO / 'samples' / 'bob.flac'}"]


def _namespace() -> list[str]:
    prefix = ["unshare", "--user", "--map-root-user", "--mount"]
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here to make a small disk")
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {probe.stderr.decode().strip()}")
    return prefix


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALK_")}
    env.update(PYTHONPATH=str(REPO), STALK_ASR_MODEL=tiny_en_dir(), STALK_LLM_ENABLED="false", **extra)
    return env


@pytest.mark.slow
def test_a_disk_that_fills_during_the_call(tmp_path) -> None:
    prefix = _namespace()
    mount, work = tmp_path / "disk", tmp_path / "work"
    mount.mkdir()
    work.mkdir()
    done = subprocess.run(
        [*prefix, sys.executable, str(REPO / "tests" / "diskfull_call.py"), str(mount), str(work), *TRACKS],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["filled"] > 0
    # Not "completed ... exit 0": the call was not stored completely, and says so.
    assert report["code"] == 1, report["err"]
    assert "error: the call was not stored completely:" in report["err"] and "disk is full" in report["err"]
    # The session is closed as failed (the space reserved beside the database was used for it).
    ((sid, status, error),) = report["sessions"]
    assert status == "failed" and "disk is full" in error, error
    assert not [name for name in report["left_on_disk"] if "reserve" in name]
    # Every utterance printed is in the database or in the recovery file it names.
    printed = [line for line in report["out"].splitlines() if re.match(r"^\[\d\d:\d\d\.\d\d - .*\(\+[\d.]+ s\)", line)]
    (recovery,) = report["recovery"].items()
    name, records = recovery
    assert name in error and all(r["session_id"] == sid and r["text"] for r in records)
    assert report["stored"] >= 1 and records
    assert report["stored"] + len(records) == len(printed), (report["stored"], len(records), printed)
    assert "terminate called" not in report["err"] and "Traceback" not in report["err"]


def test_export_onto_a_full_disk_keeps_the_old_file(tmp_path) -> None:
    """``logs export -o FILE`` writes a temporary file and renames it: a full disk leaves the
    existing FILE as it was, and no partial file."""
    prefix = _namespace()
    from storage import open_database
    from storage.recorder import CallRecorder
    from storage.records import NewSession, UtteranceRecord

    db = tmp_path / "calls.db"
    with open_database(str(db)) as d:
        rec = CallRecorder(d)
        sid = rec.start_session(NewSession(source="replay", title="long"))
        pid = rec.add_participant(sid, "ann")
        for i in range(300):  # about 60 kB of transcript: more than the disk has left
            rec.add_utterance(UtteranceRecord(sid, pid, float(i), i + 0.5, i + 1.0, f"sentence {i} " + "word " * 30))
        rec.finish_session(sid, "completed", duration=300.0)
    mount = tmp_path / "disk"
    mount.mkdir()
    script = f"""
set -e
mount -t tmpfs -o size=64k tmpfs {mount}
printf 'the export from yesterday\\n' > {mount}/call.txt
head -c 40000 /dev/zero > {mount}/filler || true
{sys.executable} -m bot logs export {sid} --format txt -o {mount}/call.txt --db {db} && echo EXIT=0 || echo EXIT=$?
echo ---
cat {mount}/call.txt
echo ---
ls -a {mount}
"""
    done = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, env=_env(), timeout=120)
    out = done.stdout
    assert "EXIT=2" in out, (out, done.stderr)
    (line,) = [x for x in done.stderr.splitlines() if x.strip()]
    assert line.startswith(f"error: cannot write {mount}/call.txt (No space left on device)")
    assert "the file that was there is unchanged" in line
    _, content, listing = out.split("---\n")
    assert content == "the export from yesterday\n"
    assert sorted(listing.split()) == [".", "..", "call.txt", "filler"]  # no temporary file left
