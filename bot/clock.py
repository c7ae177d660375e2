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
from contextlib import contextmanager
from typing import Iterator, Protocol


class CallClock(Protocol):
    virtual: bool

    def now(self) -> float: ...


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
    """

    def __init__(self, n: int) -> None:
        self._free_at = [0.0] * n
        self._held = [False] * n
        self._lock = threading.Lock()

    @contextmanager
    def run(self, ready: float) -> Iterator["LaneTiming"]:
        with self._lock:
            lane = min((i for i in range(len(self._held)) if not self._held[i]), key=lambda i: self._free_at[i])
            self._held[lane] = True
            timing = LaneTiming(start=max(ready, self._free_at[lane]))
        t0 = time.perf_counter()
        try:
            yield timing
        finally:
            timing.duration = time.perf_counter() - t0
            with self._lock:
                self._free_at[lane] = timing.start + timing.duration
                self._held[lane] = False

    def free_at(self) -> float:
        """Earliest call time at which some lane is free."""
        with self._lock:
            return min(self._free_at)


class LaneTiming:
    def __init__(self, start: float) -> None:
        self.start = start
        self.duration = 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration
