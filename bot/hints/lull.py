"""Lull detection: the whole group silent past a threshold after an active stretch.

A lull is declared at ``silence start + threshold`` when, at that moment, at least two
participants are present, nobody is speaking or started to, the stretch before the silence
was a conversation (at least ``min_turns`` turns by at least two people, with no pause as
long as the threshold between them, within the last ``active_window`` seconds), the cooldown since the
previous hint has passed and the session's maximum is not reached.

Awkwardness signals (``bot.hints.awkward``) help sooner: a flagging conversation (turn rate
and length dropping) after ``flagging_threshold`` seconds, a silence after a monologue, after
answers shrunk to a word or two or after an unanswered question after ``signal_threshold``
seconds. A stretch of nothing but backchannels ("yeah", "응") counts as silence: a
backchannel lull comes ``backchannel_seconds`` after the last real line. The lull says which
signals fired.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.hints.awkward import Said, Signal, SignalOptions, backchannel_start, content_signals, monologue
from bot.hints.state import ConversationState

# Quiet after the last backchannel before a backchannel lull is declared: someone may be about to speak.
BACKCHANNEL_QUIET = 1.5


@dataclass(frozen=True)
class LullOptions:
    threshold: float = 5.0
    min_turns: int = 3
    active_window: float = 60.0
    cooldown: float = 60.0
    max_per_session: int = 10
    flagging: bool = False
    flagging_threshold: float = 3.5
    signals: SignalOptions = field(default_factory=SignalOptions)
    signal_threshold: float = 3.0


@dataclass(frozen=True)
class Lull:
    silence_start: float  # for a backchannel lull: the end of the last real line
    detected_at: float
    signals: tuple[Signal, ...] = ()

    @property
    def flagging(self) -> bool:
        return Signal.FLAGGING in self.signals


SaidSource = Callable[[float, float], list[Said]]  # (now, since) -> transcript lines known at now


class LullDetector:
    def __init__(self, state: ConversationState, options: LullOptions, said: SaidSource | None = None) -> None:
        self.state = state
        self.opt = options
        self.said = said or (lambda now, since: [])
        self.fired: list[float] = []  # detection times of the lulls hinted at
        self._declined: float | None = None  # a silence already judged not to be a lull
        self._declined_bc: float | None = None  # the same for backchannel lulls (by the last real line's end)
        self._lock = threading.Lock()
        sig = options.signals
        self._sooner = sig.monologue or sig.short_answers or sig.unanswered or sig.backchannels
        soonest = [options.threshold]
        if options.flagging:
            soonest.append(options.flagging_threshold)
        if self._sooner:
            soonest.append(options.signal_threshold)
        self._soonest = min(soonest)

    def check(self, now: float) -> Lull | None:
        """The lull due by ``now``, if one is; each silence is declared at most once."""
        with self._lock:
            present, silence, speaking_since = self.state.quiet()  # per tick: no window figures
            if silence is None or present < 2:
                return None
            if speaking_since is not None and speaking_since <= silence + self._soonest:
                # Speech that starts after the lull was due was reported after the time a live
                # call would have declared it (ticks in a fast replay are coarse): still a lull.
                return None
            lull = self._silence_lull(now, silence)
            if lull is None and self.opt.signals.backchannels and speaking_since is None:
                lull = self._backchannel_lull(now, silence)
            if lull is not None:
                self.fired.append(lull.detected_at)
            return lull

    def _blocked(self, silence: float) -> bool:
        return bool(self.fired) and silence <= self.fired[-1]

    def _allowed(self, at: float) -> bool:
        return len(self.fired) < self.opt.max_per_session and not (
            self.fired and at < self.fired[-1] + self.opt.cooldown
        )

    def _silence_lull(self, now: float, silence: float) -> Lull | None:
        if self._declined == silence or self._blocked(silence):
            return None
        o = self.opt
        flagging = o.flagging and self._flagging(silence)
        plain = silence + (o.flagging_threshold if flagging else o.threshold)
        signals: list[Signal] = [Signal.FLAGGING] if flagging else []
        known_at = silence
        if self._sooner and now >= silence + o.signal_threshold:
            since = silence - o.active_window
            stretches = self.state.stretches(since - 30.0, silence)
            if o.signals.monologue and monologue(o.signals, stretches, silence, o.active_window):
                signals.append(Signal.MONOLOGUE)
            if o.signals.content:
                lines = self.said(now, since)
                found = content_signals(o.signals, silence, stretches, lines)
                if found:
                    signals += found
                    # A live call knows these once the lines before the silence are transcribed.
                    known_at = max((s.available_at for s in lines if s.end <= silence + 1.0), default=silence)
        # (when due, the pause that ends a conversation for it): sooner with a content signal.
        dues = [(plain, plain - silence)]
        if any(s != Signal.FLAGGING for s in signals):
            dues.insert(0, (max(silence + o.signal_threshold, known_at), o.signal_threshold))
        for due, gap in sorted(dues):
            if now < due:
                return None
            if self.state.speech_started_between(silence, due):
                break  # someone spoke before it was due: so before any later due too
            if not self._allowed(due):
                continue  # inside the cooldown: the plain threshold may be past it
            turns, speakers = self.state.active_run(silence, gap, o.active_window)
            if turns < o.min_turns or speakers < 2:
                continue  # a pause as long as this due's gap ended the conversation; the plain one may not
            return Lull(silence, due, tuple(signals))
        self._declined = silence
        return None

    def _backchannel_lull(self, now: float, silence: float) -> Lull | None:
        o = self.opt
        if now < silence + BACKCHANNEL_QUIET:
            return None
        since = silence - o.active_window - o.signals.backchannel_seconds
        stretches = self.state.stretches(since, silence)
        lines = self.said(now, since)
        found = backchannel_start(stretches, lines)
        if found is None:
            return None
        real_end, _ = found
        if self._declined_bc == real_end or self._blocked(real_end):
            return None
        known_at = max((s.available_at for s in lines), default=silence)
        at = max(real_end + o.signals.backchannel_seconds, silence + BACKCHANNEL_QUIET, known_at)
        if now < at:
            return None
        if self.state.speech_started_between(silence, at):
            return None  # a new stretch: judged when it ends
        turns, speakers = self.state.active_run(real_end, o.threshold, o.active_window)
        if not self._allowed(at) or turns < o.min_turns or speakers < 2:
            self._declined_bc = real_end
            return None
        extra = content_signals(o.signals, real_end, stretches, lines) or ()
        signals = (Signal.BACKCHANNELS, *(s for s in extra if s != Signal.BACKCHANNELS))
        return Lull(real_end, at, signals)

    def _flagging(self, silence: float) -> bool:
        w = self.opt.active_window
        now, before = self.state.snapshot(silence, w), self.state.snapshot(silence - w, w)
        if before.turns < self.opt.min_turns or now.turns == 0:
            return False
        return now.turn_rate <= 0.6 * before.turn_rate and now.mean_turn < before.mean_turn
