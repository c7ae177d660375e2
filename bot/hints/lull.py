"""Lull detection: the whole group silent past a threshold after an active stretch.

A lull is declared at ``silence start + threshold`` when, at that moment, at least two
participants are present, nobody is speaking or started to, the stretch before the silence
was a conversation (at least ``min_turns`` turns by at least two people, with no pause as
long as the threshold between them, within the last ``active_window`` seconds), the cooldown since the
previous hint has passed and the session's maximum is not reached. Optionally a flagging
conversation (turn rate and turn length both dropping against the minute before) is helped
sooner, after ``flagging_threshold`` seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from bot.hints.state import ConversationState


@dataclass(frozen=True)
class LullOptions:
    threshold: float = 5.0
    min_turns: int = 3
    active_window: float = 60.0
    cooldown: float = 60.0
    max_per_session: int = 10
    flagging: bool = False
    flagging_threshold: float = 3.5


@dataclass(frozen=True)
class Lull:
    silence_start: float
    detected_at: float
    flagging: bool


class LullDetector:
    def __init__(self, state: ConversationState, options: LullOptions) -> None:
        self.state = state
        self.opt = options
        self.fired: list[float] = []  # detection times of the lulls hinted at
        self._declined: float | None = None  # a silence already judged not to be a lull
        self._lock = threading.Lock()

    def check(self, now: float) -> Lull | None:
        """The lull due by ``now``, if one is; each silence is declared at most once."""
        with self._lock:
            present, silence, speaking_since = self.state.quiet()  # per tick: no window figures
            if silence is None or present < 2:
                return None
            if speaking_since is not None and speaking_since <= silence + self.opt.flagging_threshold:
                # Speech that starts after the lull was due was reported after the time a live
                # call would have declared it (ticks in a fast replay are coarse): still a lull.
                return None
            if self._declined == silence or (self.fired and silence <= self.fired[-1]):
                return None
            flagging = self.opt.flagging and self._flagging(silence)
            threshold = self.opt.flagging_threshold if flagging else self.opt.threshold
            due = silence + threshold
            if now < due:
                return None
            if len(self.fired) >= self.opt.max_per_session or self.state.speech_started_between(silence, due):
                self._declined = silence
                return None
            if self.fired and due < self.fired[-1] + self.opt.cooldown:
                self._declined = silence
                return None
            turns, speakers = self.state.active_run(silence, threshold, self.opt.active_window)
            if turns < self.opt.min_turns or speakers < 2:
                self._declined = silence
                return None
            self.fired.append(due)
            return Lull(silence, due, flagging)

    def _flagging(self, silence: float) -> bool:
        w = self.opt.active_window
        now, before = self.state.snapshot(silence, w), self.state.snapshot(silence - w, w)
        if before.turns < self.opt.min_turns or now.turns == 0:
            return False
        return now.turn_rate <= 0.6 * before.turn_rate and now.mean_turn < before.mean_turn
