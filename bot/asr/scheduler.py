"""One transcription scheduler per process: every session's utterances, fairly, on one model.

Each guild's call opens a ``SessionQueue`` on the process's ``TranscriptionScheduler``; the
scheduler's worker threads (``asr.workers``, sharing the one model) take the next utterance
by class, then round-robin over sessions, then over the session's speakers:

- class first: a live call's finished utterance (``JobClass.LIVE``) before an early,
  speculative transcription (``SPECULATIVE``, thrown away if speech goes on), before
  background work (``BACKGROUND``: replays at full speed, re-transcription);
- then the session after the one served last, so a busy guild cannot starve a quiet one;
- then, within that session, the speaker after the one served last, so one person's
  flood of short utterances does not hold another's back.

Bounded: each session holds at most ``queue_size`` waiting utterances. A live session's
source then waits (back-pressure reaches only that guild) and the wait is counted and
logged; a speculative utterance is never waited for: ``try_submit`` turns it away (the
caller counts it and transcribes the final utterance instead). Nothing is dropped
silently. Each result carries its queue delay (call time from the end of the utterance to
the start of its transcription), summed per session and for the process.

Call time. A session on a virtual clock (``replay --speed 0``) keeps the accounting of a
pool of its own: ``Lanes`` with as many lanes as the scheduler has workers, its utterances
in the order they ended, a batch only of utterances that had ended when the lane would
have started (bot/clock.py). Virtual sessions are for replays and benchmarks; a worker
serving one may wait (at most a second) for its source to catch up, so a process serving
live guilds should not also replay at full speed.

Threads: ``submit`` is called from each session's feeding thread, workers run here; all
shared state is under one condition variable (a few microseconds per utterance, against
hundreds of milliseconds of model time). Results are delivered on the worker thread to the
session's ``on_result``; the pipeline reaches the event loop, if ever, only through its
listeners' ``run_coroutine_threadsafe``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bot.asr.transcriber import DecodeOptions, Request, Transcript
from bot.clock import CallClock, Lanes

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the scheduler runs: a local WhisperTranscriber, or the remote one."""

    name: str

    def transcribe_batch(self, requests: list[Request], options: DecodeOptions) -> list[Transcript]: ...


class JobClass(StrEnum):
    """What an utterance is for, in the order the scheduler serves them."""

    LIVE = "live"
    SPECULATIVE = "speculative"
    BACKGROUND = "background"


_ORDER = (JobClass.LIVE, JobClass.SPECULATIVE, JobClass.BACKGROUND)


class SchedulerState(StrEnum):
    RUNNING = "running"
    CLOSED = "closed"  # workers stopped; nothing more is accepted


class QueueState(StrEnum):
    OPEN = "open"  # accepting utterances
    ENDED = "ended"  # end_of_input: no more will come (virtual-time workers stop waiting for the source)
    CLOSED = "closed"  # drained and detached from the scheduler


@dataclass
class Job:
    request: Request
    ready_at: float  # call time at which the utterance was complete
    context: Any = None  # the caller's own data, handed back with the result
    speaker: str = ""  # for fairness between the session's speakers
    kind: JobClass | None = None  # None: the session's default class
    # Set by the scheduler: the wall time it was queued (for the process-wide figures).
    queued_wall: float = 0.0


@dataclass(frozen=True)
class JobResult:
    job: Job
    transcript: Transcript | None
    error: BaseException | None
    started_at: float  # call time the work started
    done_at: float  # call time the transcript was ready
    compute_seconds: float  # wall time of the batch it was part of
    batch: int

    @property
    def queue_delay(self) -> float:
        """Call time from the end of the utterance to the start of its transcription."""
        return max(0.0, self.started_at - self.job.ready_at)


@dataclass
class PoolStats:
    """One session's transcription figures."""

    jobs: int = 0
    batches: int = 0
    compute_seconds: float = 0.0
    errors: int = 0  # utterances that could not be transcribed (after a retry on their own)
    first_error: str | None = None
    queue_delay_seconds: float = 0.0  # summed over jobs
    max_queue_delay: float = 0.0
    source_waits: int = 0  # submits that waited for room (back-pressure on the source)
    turned_away: int = 0  # speculative utterances refused because the queue was full


@dataclass
class SchedulerStats:
    """The process's figures, over every session (a snapshot is a copy)."""

    jobs: int = 0
    batches: int = 0
    compute_seconds: float = 0.0
    errors: int = 0
    queue_delay_seconds: float = 0.0
    max_queue_delay: float = 0.0
    source_waits: int = 0
    turned_away: int = 0
    by_class: dict[str, int] = field(default_factory=dict)


class SessionQueue:
    """One session's utterances on the shared scheduler (the interface the pipeline uses)."""

    def __init__(
        self,
        scheduler: TranscriptionScheduler,
        name: str,
        options: DecodeOptions,
        *,
        clock: CallClock,
        on_result: Callable[[JobResult], None],
        prepare: Callable[[Job], Request] | None,
        kind: JobClass,
        queue_size: int,
    ) -> None:
        self.scheduler = scheduler
        self.name = name
        self.options = options
        self.clock = clock
        self.on_result = on_result
        # Finishes a job's request when its work starts, so that it sees every result that
        # came before it in call time (the speaker's language, say).
        self.prepare = prepare
        self.kind = kind
        self.queue_size = queue_size
        self.stats = PoolStats()
        self.state = QueueState.OPEN
        # Per class, per speaker, in the order they ended. Guarded by the scheduler's condition.
        self._waiting: dict[JobClass, dict[str, deque[Job]]] = {k: {} for k in _ORDER}
        self._speakers: list[str] = []  # every speaker heard, in the order they first spoke
        self._turn: dict[JobClass, int] = {k: 0 for k in _ORDER}  # index into _speakers
        self._count = 0
        self._busy = 0
        self._lanes = Lanes(scheduler.workers) if clock.virtual else None

    @property
    def virtual(self) -> bool:
        return self._lanes is not None

    # -- the session's side -------------------------------------------------------------

    def submit(self, job: Job) -> None:
        """Queue an utterance; blocks while this session's queue is full (back-pressure on its source)."""
        self.scheduler._submit(self, job, wait=True)

    def try_submit(self, job: Job) -> bool:
        """Queue an utterance if there is room now; False (counted) if not."""
        return self.scheduler._submit(self, job, wait=False)

    def end_of_input(self) -> None:
        with self.scheduler._cond:
            if self.state is QueueState.OPEN:
                self.state = QueueState.ENDED
            self.scheduler._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every utterance queued so far has been transcribed."""
        with self.scheduler._cond:
            return self.scheduler._cond.wait_for(lambda: self._count == 0 and self._busy == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Finish what is queued, then leave the scheduler (and stop it, if the session owns it)."""
        self.end_of_input()
        self.drain(timeout)
        self.scheduler._detach(self)
        if self.scheduler.owner is self:
            self.scheduler.close(timeout)

    # -- the scheduler's side (under its condition) -----------------------------------------

    def _add(self, job: Job) -> None:
        kind = job.kind or self.kind
        key = "" if self.virtual else job.speaker  # virtual: one line, in the order they ended
        if key not in self._speakers:
            self._speakers.append(key)
        self._waiting[kind].setdefault(key, deque()).append(job)
        self._count += 1

    def _has(self, kind: JobClass) -> bool:
        return any(self._waiting[kind].values())

    def _pop(self, kind: JobClass) -> Job | None:
        """The next job of ``kind`` from the speaker after the one served last."""
        lines = self._waiting[kind]
        order = self._speakers
        for i in range(len(order)):
            at = (self._turn[kind] + i) % len(order)
            line = lines.get(order[at])
            if line:
                job = line.popleft()
                if not line:
                    del lines[order[at]]
                self._turn[kind] = at + 1
                self._count -= 1
                self._busy += 1
                return job
        return None

    def _pop_oldest(self, allowed: Callable[[Job], bool]) -> Job | None:
        """Virtual sessions: the job that ended first, whatever its class (a pool of its own)."""
        best: tuple[float, JobClass] | None = None
        for kind in _ORDER:
            line = self._waiting[kind].get("")
            if line and allowed(line[0]) and (best is None or line[0].ready_at < best[0]):
                best = (line[0].ready_at, kind)
        if best is None:
            return None
        line = self._waiting[best[1]][""]
        job = line.popleft()
        if not line:
            del self._waiting[best[1]][""]
        self._count -= 1
        self._busy += 1
        return job

    def _first_class(self) -> JobClass | None:
        return next((k for k in _ORDER if self._has(k)), None)


class TranscriptionScheduler:
    def __init__(self, backend: Backend, *, workers: int = 2, batch_size: int = 1, queue_size: int = 64) -> None:
        self.backend = backend
        self.workers = workers
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.state = SchedulerState.RUNNING
        self.owner: SessionQueue | None = None  # a scheduler made for one session closes with it
        self._stats = SchedulerStats()
        self._sessions: list[SessionQueue] = []
        self._next_session = 0
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"asr-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    @classmethod
    def private(cls, backend: Backend, *, workers: int, batch_size: int, queue_size: int) -> TranscriptionScheduler:
        """A scheduler for one session only (a replay, a test): it stops when that session closes."""
        return cls(backend, workers=workers, batch_size=batch_size, queue_size=queue_size)

    def open_session(
        self,
        name: str,
        options: DecodeOptions,
        *,
        clock: CallClock,
        on_result: Callable[[JobResult], None],
        prepare: Callable[[Job], Request] | None = None,
        kind: JobClass = JobClass.LIVE,
        own: bool = False,
    ) -> SessionQueue:
        queue = SessionQueue(
            self,
            name,
            options,
            clock=clock,
            on_result=on_result,
            prepare=prepare,
            kind=kind,
            queue_size=self.queue_size,
        )
        with self._cond:
            if self.state is not SchedulerState.RUNNING:
                raise RuntimeError("the transcription scheduler is closed")
            self._sessions.append(queue)
            if own:
                self.owner = queue
        return queue

    def stats(self) -> SchedulerStats:
        with self._cond:
            return SchedulerStats(**{**self._stats.__dict__, "by_class": dict(self._stats.by_class)})

    def sessions(self) -> int:
        with self._cond:
            return len(self._sessions)

    def close(self, timeout: float | None = None) -> None:
        """Finish every queued utterance, then stop the workers."""
        with self._cond:
            for s in self._sessions:
                if s.state is QueueState.OPEN:
                    s.state = QueueState.ENDED
            self._cond.wait_for(lambda: all(s._count == 0 and s._busy == 0 for s in self._sessions), timeout)
            self.state = SchedulerState.CLOSED
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    # -- internals -------------------------------------------------------------------------

    def _submit(self, queue: SessionQueue, job: Job, *, wait: bool) -> bool:
        with self._cond:
            if queue.state is QueueState.CLOSED or self.state is not SchedulerState.RUNNING:
                raise RuntimeError("transcription queue is closed")
            if queue._count >= queue.queue_size:
                if not wait:
                    queue.stats.turned_away += 1
                    self._stats.turned_away += 1
                    log.info("transcription queue of %s is full: an early transcription was skipped", queue.name)
                    return False
                queue.stats.source_waits += 1
                self._stats.source_waits += 1
                log.warning(
                    "transcription queue of %s is full (%d utterances): its audio waits for room",
                    queue.name,
                    queue._count,
                )
                self._cond.wait_for(lambda: queue._count < queue.queue_size or self.state is SchedulerState.CLOSED)
                if self.state is SchedulerState.CLOSED:
                    raise RuntimeError("transcription scheduler closed while an utterance waited")
            job.queued_wall = time.monotonic()
            queue._add(job)
            self._cond.notify_all()
            return True

    def _detach(self, queue: SessionQueue) -> None:
        with self._cond:
            queue.state = QueueState.CLOSED
            if queue in self._sessions:
                self._sessions.remove(queue)
            self._cond.notify_all()

    def _pick(self) -> tuple[SessionQueue, Job] | None:
        """Under the condition: the next job by class, then session, then speaker."""
        n = len(self._sessions)
        for kind in _ORDER:
            for i in range(n):
                idx = (self._next_session + i) % n
                queue = self._sessions[idx]
                if queue._first_class() is not kind:
                    continue  # this session has more urgent work, served when its class comes
                job = queue._pop_oldest(lambda j: True) if queue.virtual else queue._pop(kind)
                if job is not None:
                    self._next_session = idx + 1
                    return queue, job
        return None

    def _take_more(self, first: SessionQueue, allowed: Callable[[Job], bool]) -> list[tuple[SessionQueue, Job]]:
        """More jobs for a batch, waiting now: a virtual session's own that ``allowed``; for a
        wall-clock session, any wall-clock session's with the same decoding options, fairly."""
        taken: list[tuple[SessionQueue, Job]] = []
        with self._cond:
            while len(taken) < self.batch_size - 1:
                job = None
                if first.virtual:
                    job = first._pop_oldest(allowed)
                    pair = (first, job) if job is not None else None
                else:
                    pair = self._pick_like(first)
                if pair is None:
                    break
                taken.append(pair)
            self._cond.notify_all()
        return taken

    def _pick_like(self, first: SessionQueue) -> tuple[SessionQueue, Job] | None:
        n = len(self._sessions)
        for kind in _ORDER:
            for i in range(n):
                idx = (self._next_session + i) % n
                queue = self._sessions[idx]
                if queue.virtual or queue.options != first.options or queue._first_class() is not kind:
                    continue
                job = queue._pop(kind)
                if job is not None:
                    self._next_session = idx + 1
                    return queue, job
        return None

    def _source_caught_up(self, queue: SessionQueue, t: float) -> None:
        """Virtual time: wait until the source has fed audio up to ``t``, so that every
        utterance that a live call would have had waiting at ``t`` has been submitted.
        Bounded: a full queue or the end of input also ends the wait."""
        deadline = time.monotonic() + 1.0
        while queue.clock.now() < t and time.monotonic() < deadline:
            with self._cond:
                if queue.state is not QueueState.OPEN or queue._count >= queue.queue_size:
                    return
            queue.clock.wait_until(t, 0.005)

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self.state is SchedulerState.CLOSED or self._pick_ready())
                picked = self._pick()
                if picked is None:
                    return  # closed and nothing left
                self._cond.notify_all()
            queue, first = picked
            batch = [picked]
            try:
                self._serve(queue, first, batch)
            finally:
                with self._cond:
                    for q, _ in batch:
                        q._busy -= 1
                    self._cond.notify_all()

    def _pick_ready(self) -> bool:
        return any(s._count for s in self._sessions)

    def _serve(self, queue: SessionQueue, first: Job, batch: list[tuple[SessionQueue, Job]]) -> None:
        try:
            if queue._lanes is not None:
                with queue._lanes.run(first.ready_at) as timing:
                    self._source_caught_up(queue, timing.start)
                    # Only utterances that had ended by the time this worker would have
                    # started in a live call may join its batch.
                    batch += self._take_more(queue, lambda j: j.ready_at <= timing.start)
                    transcripts, error, seconds = self._run(queue.options, batch)
                starts = {id(j): timing.start for _, j in batch}
                dones = {id(j): timing.end for _, j in batch}
            else:
                batch += self._take_more(queue, lambda j: True)
                starts = {id(j): q.clock.now() for q, j in batch}
                transcripts, error, seconds = self._run(queue.options, batch)
                dones = {id(j): q.clock.now() for q, j in batch}
        except BaseException as exc:  # noqa: BLE001 - the worker lives on; the batch is reported failed
            log.exception("transcription worker failed on %d utterance(s)", len(batch))
            transcripts, error, seconds = [None] * len(batch), exc, 0.0
            starts = dones = {id(j): q.clock.now() for q, j in batch}
            self._count_errors([q for q, _ in batch], exc)
        for (q, job), transcript in zip(batch, transcripts):
            result = JobResult(job, transcript, error, starts[id(job)], dones[id(job)], seconds, len(batch))
            self._account(q, job, result)
            try:
                q.on_result(result)
            except BaseException as exc:  # noqa: BLE001
                log.exception("handling a transcript failed")
                self._count_errors([q], exc)

    def _account(self, queue: SessionQueue, job: Job, result: JobResult) -> None:
        delay = result.queue_delay
        with self._cond:
            for stats in (queue.stats, self._stats):
                stats.queue_delay_seconds += delay
                stats.max_queue_delay = max(stats.max_queue_delay, delay)
            kind = str(job.kind or queue.kind)
            self._stats.by_class[kind] = self._stats.by_class.get(kind, 0) + 1

    def _run(
        self, options: DecodeOptions, batch: list[tuple[SessionQueue, Job]]
    ) -> tuple[list[Transcript | None], BaseException | None, float]:
        t0 = time.perf_counter()
        transcripts, error = self._attempt(options, batch)
        if error is not None:
            # Once more, each on its own: a passing failure (memory) or one bad utterance must not
            # cost the others.
            results = [self._attempt(options, [pair]) for pair in batch]
            transcripts = [t[0] for t, _ in results]
            error = next((e for _, e in results if e is not None), None)
        seconds = time.perf_counter() - t0
        if error is not None:
            self._count_errors([q for (q, _), t in zip(batch, transcripts) if t is None], error)
        with self._cond:
            sessions = {id(q): q for q, _ in batch}
            for q in sessions.values():
                mine = sum(1 for x, _ in batch if x is q)
                q.stats.jobs += mine
                q.stats.batches += 1
                # The session's share of the batch's model time.
                q.stats.compute_seconds += seconds * mine / len(batch)
            self._stats.jobs += len(batch)
            self._stats.batches += 1
            self._stats.compute_seconds += seconds
        return transcripts, error, seconds

    def _count_errors(self, queues: list[SessionQueue], error: BaseException) -> None:
        with self._cond:
            for q in queues:
                q.stats.errors += 1
                self._stats.errors += 1
                if q.stats.first_error is None:
                    q.stats.first_error = f"{type(error).__name__}: {error}"

    def _attempt(
        self, options: DecodeOptions, batch: list[tuple[SessionQueue, Job]]
    ) -> tuple[list[Transcript | None], BaseException | None]:
        try:
            requests = [q.prepare(j) if q.prepare else j.request for q, j in batch]
            return list(self.backend.transcribe_batch(requests, options)), None
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the worker must live on
            # (a worker thread that died would leave its utterances, and close(), waiting forever)
            log.exception("transcription failed for %d utterance(s)", len(batch))
            return [None] * len(batch), exc
