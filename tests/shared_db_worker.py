"""One S-Talk process on a shared database, driven by tests/logs/test_shared_postgres.py.

It runs the storage layer's start-up exactly as ``python -m bot run`` does, in steps the test
releases through standard input, so that two of these can be let go at the same moment:

    go-open    open_database (migrations, as `run` does before logging in)  -> "opened"
    go-start   close_stale_sessions (setup_hook), purge_expired (the retention worker's first
               run), then a call recorded as the pipeline records it        -> JSON line
    finish     the call ends (finish_session)                               -> "finished"

``--host`` names the machine this process claims to be on (storage.recorders reads the host
name), so that two processes on this machine are told apart as two machines would be: by the
heartbeat, not the pid.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--host", required=True)
    p.add_argument("--max-age-days", type=int, default=30)
    args = p.parse_args()
    socket.gethostname = lambda: args.host  # before storage.recorders caches it

    from storage.db import open_database
    from storage.recorder import CallRecorder
    from storage.records import NewSession, UtteranceRecord
    from storage.retention import purge_expired
    from storage.vocab import SessionSource, SessionStatus

    def step(name: str) -> None:
        line = sys.stdin.readline().strip()
        if line != name:
            raise SystemExit(f"expected {name!r} on stdin, got {line!r}")

    print("ready", flush=True)
    step("go-open")
    db = open_database(args.url)
    print("opened", flush=True)
    step("go-start")
    recorder = CallRecorder(db)
    closed = recorder.close_stale_sessions()
    purged = purge_expired(db, args.max_age_days)
    session_id = recorder.start_session(
        NewSession(source=SessionSource.DISCORD, title=f"call on {args.host}", guild_id="7", channel_id="8")
    )
    speaker = recorder.add_participant(session_id, "ann", user_id="11")
    for i in range(3):
        recorder.add_utterance(
            UtteranceRecord(
                session_id=session_id,
                participant_id=speaker,
                start=float(i),
                end=i + 0.8,
                transcribed_at=i + 1.5,
                text=f"utterance {i} on {args.host}",
                language="en",
            )
        )
    print(json.dumps({"closed_stale": closed, "purged": purged.sessions, "session": session_id}), flush=True)
    step("finish")
    recorder.finish_session(session_id, SessionStatus.COMPLETED, duration=3.0)
    db.close()
    print("finished", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
