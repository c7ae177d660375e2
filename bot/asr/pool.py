"""A bounded queue of utterances and the worker threads that transcribe them.

One model serves every participant: ``workers`` threads take utterances in the order
they ended, several at a time when several are waiting (``batch_size``), so that a busy
call shares the encoder passes instead of queueing them one by one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.asr.transcriber import DecodeOptions, Request, Transcript, WhisperTranscriber
from bot.clock import CallClock, Lanes

log = logging.getLogger(__name__)


@dataclass
class Job:
    request: Request
    ready_at: float  # call time at which the utterance was complete
    context: Any = None  # the caller's own data, handed back with the result


@dataclass(frozen=True)
class JobResult:
    job: Job
    transcript: Transcript | None
    error: BaseException | None
    started_at: float  # call time the work started
    done_at: float  # call time the transcript was ready
    compute_seconds: float  # wall time of the batch it was part of
    batch: int


@dataclass
class PoolStats:
    jobs: int = 0
    batches: int = 0
    compute_seconds: float = 0.0
    errors: int = 0  # utterances that could not be transcribed (after a retry on their own)
    first_error: str | None = None


class TranscriptionPool:
    def __init__(
        self,
        transcriber: WhisperTranscriber,
        options: DecodeOptions,
        *,
        clock: CallClock,
        on_result: Callable[[JobResult], None],
        workers: int = 2,
        queue_size: int = 64,
        batch_size: int = 1,
        prepare: Callable[[Job], Request] | None = None,
    ) -> None:
        self.transcriber = transcriber
        self.options = options
        self.clock = clock
        self.on_result = on_result
        # Finishes a job's request when its work starts, so that it sees every result that
        # came before it in call time (the speaker's language, say).
        self.prepare = prepare
        self.batch_size = batch_size
        self.queue_size = queue_size
        self.stats = PoolStats()
        self._items: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._input_ended = False
        self._busy = 0
        self._lanes = Lanes(workers) if clock.virtual else None
        self._threads = [threading.Thread(target=self._work, name=f"asr-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, job: Job) -> None:
        """Queue an utterance; blocks while the queue is full (the backpressure on sources)."""
        with self._cond:
            if self._closing:
                raise RuntimeError("transcription pool is closed")
            self._cond.wait_for(lambda: len(self._items) < self.queue_size)
            self._items.append(job)
            self._cond.notify_all()

    def end_of_input(self) -> None:
        """No more utterances will come (lets virtual-time workers stop waiting for the source)."""
        with self._cond:
            self._input_ended = True
            self._cond.notify_all()

    def _source_caught_up(self, t: float) -> None:
        """Virtual time: wait until the source has fed audio up to ``t``, so that every
        utterance that a live call would have had waiting at ``t`` has been submitted.
        Bounded: a full queue or the end of input also ends the wait."""
        deadline = time.monotonic() + 1.0
        while self.clock.now() < t and time.monotonic() < deadline:
            with self._cond:
                if self._input_ended or self._closing or len(self._items) >= self.queue_size:
                    return
            self.clock.wait_until(t, 0.005)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued utterance has been transcribed."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and self._busy == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Finish what is queued, then stop the workers."""
        self.end_of_input()
        self.drain(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _take_more(self, allowed: Callable[[Job], bool]) -> list[Job]:
        """More jobs for a batch: as many as allowed that are waiting now."""
        taken: list[Job] = []
        with self._cond:
            while self._items and len(taken) < self.batch_size - 1 and allowed(self._items[0]):
                taken.append(self._items.popleft())
            self._busy += len(taken)
            self._cond.notify_all()
        return taken

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._items or self._closing)
                if not self._items:
                    return
                first = self._items.popleft()
                self._busy += 1
                self._cond.notify_all()
            batch = [first]
            try:
                try:
                    if self._lanes is not None:
                        with self._lanes.run(first.ready_at) as timing:
                            self._source_caught_up(timing.start)
                            # Only utterances that had ended by the time this worker would have
                            # started in a live call may join its batch.
                            batch += self._take_more(lambda j: j.ready_at <= timing.start)
                            transcripts, error, seconds = self._run(batch)
                        started, done = timing.start, timing.end
                    else:
                        batch += self._take_more(lambda j: True)
                        started = self.clock.now()
                        transcripts, error, seconds = self._run(batch)
                        done = self.clock.now()
                except BaseException as exc:  # noqa: BLE001 - the worker lives on; the batch is reported failed
                    log.exception("transcription worker failed on %d utterance(s)", len(batch))
                    now = self.clock.now()
                    transcripts, error, seconds, started, done = [None] * len(batch), exc, 0.0, now, now
                    self._count_errors(len(batch), exc)
                for job, transcript in zip(batch, transcripts):
                    result = JobResult(job, transcript, error, started, done, seconds, len(batch))
                    try:
                        self.on_result(result)
                    except BaseException as exc:  # noqa: BLE001
                        log.exception("handling a transcript failed")
                        self._count_errors(1, exc)
            finally:
                with self._cond:
                    self._busy -= len(batch)
                    self._cond.notify_all()

    def _run(self, batch: list[Job]) -> tuple[list[Transcript | None], BaseException | None, float]:
        t0 = time.perf_counter()
        transcripts, error = self._attempt(batch)
        if error is not None:
            # Once more, each on its own: a passing failure (memory) or one bad utterance must not
            # cost the others.
            results = [self._attempt([job]) for job in batch]
            transcripts = [t[0] for t, _ in results]
            error = next((e for _, e in results if e is not None), None)
        seconds = time.perf_counter() - t0
        if error is not None:
            self._count_errors(sum(t is None for t in transcripts), error)
        with self._cond:
            self.stats.jobs += len(batch)
            self.stats.batches += 1
            self.stats.compute_seconds += seconds
        return transcripts, error, seconds

    def _count_errors(self, n: int, error: BaseException) -> None:
        with self._cond:
            self.stats.errors += n
            if n and self.stats.first_error is None:
                self.stats.first_error = f"{type(error).__name__}: {error}"

    def _attempt(self, batch: list[Job]) -> tuple[list[Transcript | None], BaseException | None]:
        try:
            requests = [self.prepare(j) if self.prepare else j.request for j in batch]
            return list(self.transcriber.transcribe_batch(requests, self.options)), None
        except BaseException as exc:  # noqa: BLE001 - whatever it is, the worker must live on
            # (a worker thread that died would leave its utterances, and close(), waiting forever)
            log.exception("transcription failed for %d utterance(s)", len(batch))
            return [None] * len(batch), exc
