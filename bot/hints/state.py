"""Conversation state of one call, fed by voice activity (transcripts come later and are not needed).

Who is present, who is speaking now, every stretch of speech with its time, and figures
derived from them: turn gaps, turn rate, speaking share. Thread-safe: the pipeline calls it
from its feeding and worker threads.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

# Speech kept for the figures; older stretches no longer matter to a lull.
HISTORY_SECONDS = 600.0


@dataclass(frozen=True)
class Stretch:
    key: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Snapshot:
    present: frozenset[str]
    speaking: frozenset[str]
    silence_since: float | None  # end of the last speech when nobody speaks; None while someone does
    last_end: float | None  # end of the latest finished speech
    speaking_since: float | None  # earliest start among those speaking now
    last_start: float | None  # the latest speech start heard
    turns: int  # stretches of speech in the window asked for
    speakers: int  # distinct speakers in that window
    turn_rate: float  # stretches per minute in that window
    mean_turn: float  # mean stretch length (s) in that window
    mean_gap: float | None  # mean silence between consecutive stretches by different speakers
    share: dict[str, float]  # speaking time per participant / all speaking time in the window


class ConversationState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._present: set[str] = set()
        self._speaking: dict[str, float] = {}  # key -> start
        self._stretches: deque[Stretch] = deque()
        self._last_end: float | None = None
        self._last_start: float | None = None

    # -- events -------------------------------------------------------------------------

    def joined(self, key: str) -> None:
        with self._lock:
            self._present.add(key)

    def left(self, key: str, at: float | None = None) -> None:
        with self._lock:
            self._present.discard(key)
            start = self._speaking.pop(key, None)
            if start is not None and at is not None:
                self._add(Stretch(key, start, max(at, start)))

    def speech_started(self, key: str, at: float) -> None:
        with self._lock:
            self._present.add(key)
            self._speaking[key] = at
            self._last_start = at if self._last_start is None else max(self._last_start, at)

    def speech_ended(self, key: str, at: float) -> None:
        with self._lock:
            start = self._speaking.pop(key, None)
            self._add(Stretch(key, at if start is None else start, at))

    def _add(self, stretch: Stretch) -> None:
        self._stretches.append(stretch)
        self._last_end = stretch.end if self._last_end is None else max(self._last_end, stretch.end)
        while self._stretches and self._stretches[0].end < stretch.end - HISTORY_SECONDS:
            self._stretches.popleft()

    # -- figures --------------------------------------------------------------------------

    def present(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._present)

    def quiet(self) -> tuple[int, float | None, float | None]:
        """(how many present, end of the latest finished speech, earliest start among those
        speaking now): what a lull check needs on every tick, without the window's figures."""
        with self._lock:
            return len(self._present), self._last_end, min(self._speaking.values(), default=None)

    def stretches(self, since: float, before: float) -> list[Stretch]:
        """Finished stretches that ended in (since, before], by start."""
        with self._lock:
            return sorted((s for s in self._stretches if since < s.end <= before + 1e-6), key=lambda s: s.start)

    def speech_started_between(self, lo: float, hi: float) -> bool:
        """Did anyone start speaking in (lo, hi)? (Starts are reported a little after they happen.)"""
        with self._lock:
            if any(lo < s < hi for s in self._speaking.values()):
                return True
            return any(lo < s.start < hi for s in self._stretches)

    def active_run(self, before: float, max_gap: float, window: float) -> tuple[int, int]:
        """(turns, speakers) of the conversation that ran up to ``before``: the stretches back to
        the first silence of ``max_gap`` or more (at most ``window`` seconds back), a turn being
        consecutive speech by one person."""
        with self._lock:
            done = sorted(
                (s for s in self._stretches if s.end <= before + 1e-6 and s.end > before - window),
                key=lambda s: s.start,
            )
        run: list[Stretch] = []
        start_of_run = before
        for s in reversed(done):
            if start_of_run - s.end >= max_gap:
                break
            run.append(s)
            start_of_run = min(start_of_run, s.start)
        run.reverse()
        turns = sum(1 for i, s in enumerate(run) if i == 0 or s.key != run[i - 1].key)
        return turns, len({s.key for s in run})

    def snapshot(self, now: float, window: float = 60.0) -> Snapshot:
        with self._lock:
            lo = now - window
            recent = sorted((s for s in self._stretches if s.end > lo and s.start < now), key=lambda s: s.start)
            talk: dict[str, float] = {}
            for s in recent:
                talk[s.key] = talk.get(s.key, 0.0) + min(s.end, now) - max(s.start, lo)
            total = sum(talk.values())
            gaps = [b.start - a.end for a, b in zip(recent, recent[1:]) if a.key != b.key and b.start >= a.end]
            silence = None if self._speaking else self._last_end
            return Snapshot(
                present=frozenset(self._present),
                speaking=frozenset(self._speaking),
                silence_since=silence,
                last_end=self._last_end,
                speaking_since=min(self._speaking.values(), default=None),
                last_start=self._last_start,
                turns=len(recent),
                speakers=len({s.key for s in recent}),
                turn_rate=len(recent) * 60.0 / window,
                mean_turn=sum(s.duration for s in recent) / len(recent) if recent else 0.0,
                mean_gap=sum(gaps) / len(gaps) if gaps else None,
                share={k: v / total for k, v in talk.items()} if total > 0 else {},
            )
