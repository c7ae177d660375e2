"""Sessions' heartbeat (storage.heartbeat, migration 0007): what tells another machine's live
recorder from one that died, on real SQLite."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from storage import get_session, heartbeat, open_database
from storage.access import Viewer
from storage.deletion import delete_session
from storage.models import CallSession, utcnow
from storage.recorder import CallRecorder
from storage.recorders import STALE_AFTER_S, RecorderState, liveness, this_process
from storage.records import NewSession

ELSEWHERE = "another-machine/12345678:99:1000"  # a recorder whose pid this machine cannot check


def _set(db, session_id: int, **values) -> None:
    with db.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == session_id).values(**values))


def test_liveness_of_a_recorder_elsewhere_is_its_heartbeat() -> None:
    now = utcnow()
    fresh, stale = now - timedelta(seconds=5), now - timedelta(seconds=STALE_AFTER_S + 1)
    assert liveness(ELSEWHERE, fresh, now=now) == RecorderState.ALIVE
    assert liveness(ELSEWHERE, stale, now=now) == RecorderState.GONE
    assert liveness(ELSEWHERE, None, now=now) == RecorderState.UNKNOWN  # an S-Talk before heartbeats
    assert liveness(None, fresh, now=now) == RecorderState.UNKNOWN
    # On this machine the process itself decides, whatever the heartbeat says.
    assert liveness(this_process(), stale, now=now) == RecorderState.ALIVE


def test_a_recording_keeps_its_heartbeat_and_lets_it_go(tmp_path) -> None:
    with open_database(str(tmp_path / "beat.db")) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="replay", title="beating"))
        assert heartbeat.held(db) == {sid}
        old = utcnow() - timedelta(hours=1)
        _set(db, sid, heartbeat_at=old)
        assert heartbeat.beat(db) == 1  # what the thread does every BEAT_S seconds
        with db.session() as s:
            assert s.get(CallSession, sid).heartbeat_at > old
        rec.finish_session(sid, "completed", duration=1.0)
        assert heartbeat.held(db) == frozenset()
        assert not [t for t in threading.enumerate() if t.name == "s-talk-heartbeat"]
        assert heartbeat.beat(db) == 0  # ended sessions are not touched


def test_the_thread_beats(tmp_path) -> None:
    with open_database(str(tmp_path / "thread.db")) as db:
        sid = CallRecorder(db).start_session(NewSession(source="replay"))
        heartbeat.release(db, sid)
        old = utcnow() - timedelta(hours=1)
        _set(db, sid, heartbeat_at=old)
        seen = threading.Event()
        heartbeat.hold(db, sid, every_s=0.05)
        try:
            for _ in range(400):  # a guard against a hang, not a measured time
                with db.session() as s:
                    if s.get(CallSession, sid).heartbeat_at > old:
                        seen.set()
                        break
                seen.wait(0.05)
            assert seen.is_set()
        finally:
            heartbeat.release(db, sid)


def test_clean_up_and_delete_go_by_the_heartbeat_elsewhere(tmp_path) -> None:
    with open_database(str(tmp_path / "elsewhere.db")) as db:
        rec = CallRecorder(db)
        live, dead, legacy = (rec.start_session(NewSession(source="discord", guild_id="1")) for _ in range(3))
        for sid in (live, dead, legacy):
            heartbeat.release(db, sid)
        _set(db, live, recorder=ELSEWHERE, heartbeat_at=utcnow())
        _set(db, dead, recorder=ELSEWHERE, heartbeat_at=utcnow() - timedelta(seconds=STALE_AFTER_S * 2))
        _set(db, legacy, recorder=ELSEWHERE, heartbeat_at=None)

        operator = Viewer.cli_operator()
        assert delete_session(db, operator, live).status == "active"  # being recorded elsewhere
        assert rec.close_left_active(live).outcome == "recording"
        assert rec.close_left_active(legacy).outcome == "unknown"  # needs --force, as before

        assert rec.close_stale_sessions() == 2  # the stale one and the one from before heartbeats
        assert get_session(db, live).status == "active"
        assert get_session(db, dead).status == "interrupted"
        assert get_session(db, legacy).status == "interrupted"
