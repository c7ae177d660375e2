"""Call time: seconds since the session started, real or simulated.

In a live call and in paced replays call time follows the wall clock. In a replay at
``--speed 0`` audio is fed as fast as the machine allows, so call time is *virtual*: the
source advances it as it feeds audio, and work that would take wall time in a live call
(transcription, an LLM answer) is added to it by whoever does that work, through
``Lanes``, so that stored and printed times are those a live call would have had.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class CallClock(Protocol):
    virtual: bool

    def now(self) -> float: ...

    def advance(self, t: float) -> None: ...

    def wait_until(self, t: float, timeout: float) -> bool: ...


class WallClock:
    """Real time since ``start``, scaled by ``speed`` (a replay at 2x runs twice as fast)."""

    virtual = False

    def __init__(self, speed: float = 1.0, start: float | None = None) -> None:
        self.speed = speed
        self.start = time.monotonic() if start is None else start

    def now(self) -> float:
        return (time.monotonic() - self.start) * self.speed

    def wall_for(self, call_seconds: float) -> float:
        return call_seconds / self.speed

    def advance(self, t: float) -> None:
        """Wall time moves on by itself; a source's position does not set it."""

    def wait_until(self, t: float, timeout: float) -> bool:
        wait = min(self.wall_for(t - self.now()), timeout)
        if wait > 0:
            time.sleep(wait)
        return self.now() >= t


class VirtualClock:
    """Call time set by the source feeding audio (``advance``); never goes backwards."""

    virtual = True

    def __init__(self) -> None:
        self._t = 0.0
        self._cond = threading.Condition()

    def now(self) -> float:
        return self._t

    def advance(self, t: float) -> None:
        with self._cond:
            if t > self._t:
                self._t = t
                self._cond.notify_all()

    def wait_until(self, t: float, timeout: float) -> bool:
        """Block until the source has fed audio up to ``t`` (False on timeout)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._t >= t, timeout)


class Lanes:
    """Simulated workers for virtual time.

    Each of ``n`` lanes stands for one worker of a live call. Work that became ready at
    call time ``ready`` starts when a lane is free (``max(ready, lane free)``) and takes
    the wall time it really took; the lane is then busy until ``start + duration``. A
    lane is held by exactly one real thread while it works, so with as many lanes as
    threads a thread always finds one.

    Work is also kept causal: it does not begin in real time until every other lane's
    work has progressed, in call time, past its start. Two jobs therefore run side by side
    only if they would overlap in a live call (so CPU contention is what a live call would
    see), and results that came earlier in call time (a speaker's language, say) are
    there for later work, as they would be live.
    """

    def __init__(self, n: int) -> None:
        self._free_at = [0.0] * n
        self._held = [False] * n
        self._start = [0.0] * n
        self._t0: list[float | None] = [None] * n
        self._cond = threading.Condition()

    def _progress(self, lane: int, now: float) -> float:
        t0 = self._t0[lane]
        return self._start[lane] + (now - t0 if t0 is not None else 0.0)

    def _wait_needed(self, mine: int, start: float) -> float:
        now = time.perf_counter()
        behind = [
            start - self._progress(i, now)
            for i in range(len(self._held))
            if i != mine and self._held[i] and self._progress(i, now) < start
        ]
        return max(behind, default=0.0)

    @contextmanager
    def run(self, ready: float) -> Iterator[LaneTiming]:
        with self._cond:
            lane = min((i for i in range(len(self._held)) if not self._held[i]), key=lambda i: self._free_at[i])
            self._held[lane] = True
            timing = LaneTiming(start=max(ready, self._free_at[lane]))
            self._start[lane], self._t0[lane] = timing.start, None
            while (wait := self._wait_needed(lane, timing.start)) > 0:
                self._cond.wait(min(wait, 0.05))
            self._t0[lane] = time.perf_counter()
            self._cond.notify_all()
        t0 = time.perf_counter()
        try:
            yield timing
        finally:
            timing.duration = time.perf_counter() - t0
            with self._cond:
                self._free_at[lane] = timing.start + timing.duration
                self._held[lane] = False
                self._t0[lane] = None
                self._cond.notify_all()


class LaneTiming:
    def __init__(self, start: float) -> None:
        self.start = start
        self.duration = 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration
