"""The process's transcription scheduler: fair between sessions and speakers, live before background,
bounded, nothing lost, and the queue delay of every utterance reported. Real speech on tiny.en."""

from __future__ import annotations

import threading

import pytest

from bot.asr.scheduler import Job, JobClass, JobResult, QueueState, SchedulerState, TranscriptionScheduler
from bot.asr.transcriber import DecodeOptions, Request
from bot.clock import WallClock
from tests.calls import librispeech_files, load16k

pytestmark = pytest.mark.slow  # tiny.en over real utterances: seconds


class GatedBackend:
    """The real model behind a gate: the first transcription waits until the test has queued
    everything, so the order the scheduler serves them in is the scheduler's alone."""

    def __init__(self, transcriber) -> None:
        self.transcriber = transcriber
        self.name = transcriber.name
        self.gate = threading.Event()
        self.entered = threading.Event()  # the worker holds its first job
        self.order: list[str] = []
        self._lock = threading.Lock()

    def transcribe_batch(self, requests, options):
        self.entered.set()
        self.gate.wait(120)
        with self._lock:
            self.order += [r.hotwords or "" for r in requests]  # the test's label for each job
        return self.transcriber.transcribe_batch(requests, options)


@pytest.fixture(scope="module")
def clips():
    return [load16k(f) for f in librispeech_files("1688")[:3]]


def job(label: str, audio, speaker: str, kind: JobClass | None = None) -> Job:
    return Job(Request(audio=audio, hotwords=label), ready_at=0.0, speaker=speaker, kind=kind)


class Collector:
    def __init__(self) -> None:
        self.results: list[JobResult] = []
        self._lock = threading.Lock()

    def __call__(self, result: JobResult) -> None:
        with self._lock:
            self.results.append(result)


def test_round_robin_over_sessions_then_speakers_and_live_before_background(tiny_en, clips):
    backend = GatedBackend(tiny_en)
    scheduler = TranscriptionScheduler(backend, workers=1, batch_size=1, queue_size=16)
    options = DecodeOptions(language="en")
    got = {name: Collector() for name in ("busy", "quiet", "replay")}
    busy = scheduler.open_session("busy", options, clock=WallClock(), on_result=got["busy"])
    quiet = scheduler.open_session("quiet", options, clock=WallClock(), on_result=got["quiet"])
    replay = scheduler.open_session(
        "replay", options, clock=WallClock(), on_result=got["replay"], kind=JobClass.BACKGROUND
    )
    try:
        busy.submit(job("a1", clips[0], "ann"))
        assert backend.entered.wait(60)  # the worker waits at the gate with it
        replay.submit(job("r1", clips[1], "x"))
        for label in ("a2", "a3", "a4"):
            busy.submit(job(label, clips[2], "ann"))
        busy.submit(job("b1", clips[1], "ben"))
        busy.submit(job("s1", clips[0], "ben", kind=JobClass.SPECULATIVE))
        quiet.submit(job("q1", clips[0], "cat"))
        backend.gate.set()
        for q in (busy, quiet, replay):
            assert q.drain(120)
    finally:
        scheduler.close(60)
    # The quiet guild is next after the busy guild's first; within the busy guild Ben is not
    # held back by Ann's backlog; the early guess after every finished utterance; the replay last.
    assert backend.order == ["a1", "q1", "b1", "a2", "a3", "a4", "s1", "r1"]
    assert scheduler.state is SchedulerState.CLOSED
    for name, collector in got.items():
        assert all(r.transcript is not None and r.transcript.text for r in collector.results), name
        assert all(r.queue_delay >= 0 and r.done_at >= r.started_at for r in collector.results)
    assert scheduler.stats().jobs == 8 and scheduler.stats().by_class == {"live": 6, "speculative": 1, "background": 1}
    assert busy.stats.jobs == 6 and busy.stats.max_queue_delay >= busy.stats.queue_delay_seconds / 6


def test_a_full_queue_holds_only_its_own_source_and_turns_speculation_away(tiny_en, clips):
    backend = GatedBackend(tiny_en)
    scheduler = TranscriptionScheduler(backend, workers=1, batch_size=1, queue_size=2)
    options = DecodeOptions(language="en")
    full, other = Collector(), Collector()
    flooded = scheduler.open_session("flooded", options, clock=WallClock(), on_result=full)
    calm = scheduler.open_session("calm", options, clock=WallClock(), on_result=other)
    try:
        flooded.submit(job("f1", clips[0], "ann"))
        assert backend.entered.wait(60)  # in work, at the gate
        flooded.submit(job("f2", clips[1], "ann"))
        flooded.submit(job("f3", clips[2], "ann"))  # the queue holds 2
        assert not flooded.try_submit(job("guess", clips[0], "ann", kind=JobClass.SPECULATIVE))
        waiting = threading.Thread(target=flooded.submit, args=(job("f4", clips[0], "ann"),))
        waiting.start()  # blocks: back-pressure on this session's source
        calm.submit(job("c1", clips[1], "cat"))  # another guild is not held up by it
        backend.gate.set()
        waiting.join(120)
        assert not waiting.is_alive()
        assert flooded.drain(120) and calm.drain(120)
    finally:
        scheduler.close(60)
    assert len(full.results) == 4 and len(other.results) == 1  # nothing lost
    assert flooded.stats.turned_away == 1 and flooded.stats.source_waits == 1
    assert calm.stats.source_waits == 0
    assert "guess" not in backend.order


def test_a_closed_session_leaves_the_scheduler_to_the_others(tiny_en, clips):
    scheduler = TranscriptionScheduler(tiny_en, workers=2, batch_size=2, queue_size=8)
    options = DecodeOptions(language="en")
    first, second = Collector(), Collector()
    a = scheduler.open_session("a", options, clock=WallClock(), on_result=first)
    b = scheduler.open_session("b", options, clock=WallClock(), on_result=second)
    try:
        a.submit(job("a", clips[0], "ann"))
        a.close(120)
        assert a.state is QueueState.CLOSED and len(first.results) == 1
        with pytest.raises(RuntimeError, match="closed"):
            a.submit(job("late", clips[0], "ann"))
        assert scheduler.state is SchedulerState.RUNNING and scheduler.sessions() == 1
        b.submit(job("b", clips[1], "ben"))
        assert b.drain(120) and second.results[0].transcript is not None
    finally:
        scheduler.close(60)


def test_two_replays_share_one_scheduler_and_each_keeps_its_call_time(tiny_en, tmp_path):
    import io

    from bot.replay import Track, replay
    from storage import get_session, open_database
    from tests.bounds import at_most
    from tests.calls import build_call, librispeech_refs, offline_config, texts_by_turn, wer

    refs = librispeech_refs()
    config = offline_config(STALK_ASR_LANGUAGE="en")
    scheduler = TranscriptionScheduler(tiny_en, workers=2, batch_size=1, queue_size=8)
    calls = []
    for i, pair in enumerate((("1688", "2033"), ("2414", "3005"))):
        script = [(name, librispeech_files(s)[i], refs[librispeech_files(s)[i].stem]) for name, s in zip("ab", pair)]
        sub = tmp_path / f"call{i}"
        sub.mkdir()
        calls.append((sub, *build_call(sub, script, gap=0.8)))
    for sub, _, _ in calls:
        # Migrated here, one after the other: Alembic's command API keeps module-level state and
        # two threads migrating two fresh files at once trip over it (one bot opens one database).
        open_database(str(sub / "call.db")).close()
    summaries: dict[int, object] = {}

    def run(i: int) -> None:
        sub, tracks, _ = calls[i]
        summaries[i] = replay(
            config,
            [Track(n, str(p)) for n, p in tracks.items()],
            db_url=str(sub / "call.db"),
            speed=0,
            out=io.StringIO(),
            transcriber=tiny_en,
            scheduler=scheduler,
            hints=False,
        )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    try:
        assert scheduler.sessions() == 0  # each call left the scheduler at its close
        assert scheduler.state is SchedulerState.RUNNING  # it was not theirs to stop
        for i, (sub, _, placed) in enumerate(calls):
            db = open_database(str(sub / "call.db"))
            detail = get_session(db, summaries[i].session_id)  # type: ignore[attr-defined]
            db.close()
            hyps = texts_by_turn(detail.utterances, placed)
            at_most(f"tiny.en WER, shared scheduler call {i}", wer([p.text for p in placed], hyps), 0.4)
            # Call time of its own: every transcript after its last word, within the call's span.
            assert all(u.end < u.transcribed_at for u in detail.utterances)
        assert scheduler.stats().by_class == {"background": scheduler.stats().jobs}  # replays at speed 0
    finally:
        scheduler.close(60)
