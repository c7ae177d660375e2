"""Keeps a suggestion set ready in the background as the conversation moves.

A model may take many seconds per answer, and a lull must be answered within one. So each
new transcript line marks the window changed, and one worker thread asks the model for a
set for the newest window whenever it is free (not more often than ``min_interval``):
work is bounded to one request at a time, lines that arrive meanwhile are coalesced into
the next request, and a set older than the engine's ``max_age`` is discarded when a lull
comes. Failures are retried with backoff; after that the model counts as down (one warning),
is tried again after a growing pause, and the engine's fallback covers the gap.

Virtual time (``replay --speed 0``): a request the worker starts at call time ``t`` and that
takes ``g`` seconds of wall time (retries and their pauses included) is ready at ``t + g``.
The worker starts a request only from lines that existed at ``t``, and ``ready_for(T)``
waits, if need be, until every request that a live call would have finished by ``T`` has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.clock import CallClock
from bot.hints.languages import needed_languages
from bot.hints.llm import LlmError, LlmSuggester, with_retries
from bot.hints.terms import Line
from bot.hints.types import SuggestionSet

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    line: Line
    available_at: float  # call time the transcript existed
    revision: int


@dataclass
class _InFlight:
    start: float  # call time
    wall0: float
    slept: float = 0.0  # simulated pauses (virtual time)

    def progress(self) -> float:
        return self.start + (time.perf_counter() - self.wall0) + self.slept


@dataclass
class PreparerStats:
    requests: int = 0
    sets: int = 0
    failures: int = 0
    generation_seconds: list[float] = field(default_factory=list)  # per successful set (wall, incl. retries)
    dropped: dict[str, int] = field(default_factory=dict)  # reasons model items were refused


class Preparer:
    def __init__(
        self,
        suggester: LlmSuggester | None,
        clock: CallClock,
        *,
        window: float = 180.0,
        min_interval: float = 5.0,
        retries: int = 2,
        backoff: float = 1.0,
        down_pause: float = 30.0,
        default_language: str = "en",
        wanted: Callable[[], bool] | None = None,
        max_languages: int = 3,
    ) -> None:
        self.suggester = suggester
        # Whether hints are possible at all now (two people present): no requests otherwise.
        self.wanted = wanted or (lambda: True)
        self.clock = clock
        self.window = window
        self.min_interval = min_interval
        self.retries = retries
        self.backoff = backoff
        self.down_pause = down_pause
        self.default_language = default_language
        self.max_languages = max_languages
        self.stats = PreparerStats()
        self._entries: list[_Entry] = []
        self._revision = 0
        self._done: dict[str, int] = {}  # per language: newest revision a request has been made for
        self._ready: list[SuggestionSet] = []
        self._delivered: list[tuple[float, str]] = []  # (call time, text) already sent: never again
        self._in_flight: _InFlight | None = None
        self._free_at = 0.0
        self._last_start = float("-inf")
        self._down_until: float | None = None  # call time the model may be tried again
        self._pause = down_pause
        self._closing = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if suggester is not None:
            self._thread = threading.Thread(target=self._work, name="hints-prepare", daemon=True)
            self._thread.start()

    # -- inputs ---------------------------------------------------------------------------

    def add_line(self, line: Line, available_at: float) -> None:
        with self._cond:
            self._revision += 1
            self._entries.append(_Entry(line, available_at, self._revision))
            horizon = available_at - 2 * self.window
            while self._entries and self._entries[0].available_at < horizon:
                self._entries.pop(0)
            self._cond.notify_all()

    def delivered(self, at: float, texts: list[str]) -> None:
        with self._cond:
            self._delivered += [(at, t) for t in texts]

    def lines(self, at: float) -> list[Line]:
        """The transcript window as it stood at call time ``at``."""
        with self._cond:
            return self._lines(at)

    def _lines(self, at: float) -> list[Line]:
        return [e.line for e in self._entries if e.available_at <= at and e.line.end >= at - self.window]

    def avoid(self, at: float) -> list[str]:
        with self._cond:
            return [t for when, t in self._delivered if when <= at]

    @property
    def running(self) -> bool:
        """Whether the worker thread (started when there is a model) still runs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the lull asks ------------------------------------------------------------------------

    def ready_for(self, t: float, max_age: float, language: str | None = None) -> SuggestionSet | None:
        """The newest set (in ``language``, if given) ready at call time ``t`` whose window is at
        most ``max_age`` old."""
        with self._cond:
            if self.clock.virtual:
                while not self._caught_up(t):  # progress is wall time passing: poll
                    self._cond.wait(0.01)
            usable = [
                s
                for s in self._ready
                if s.ready_at <= t and s.started_at >= t - max_age and language in (None, s.language)
            ]
            return max(usable, key=lambda s: (s.revision, s.ready_at), default=None)

    def _caught_up(self, t: float) -> bool:
        if self._closing or self._thread is None:
            return True
        if self._in_flight is not None:
            return self._in_flight.progress() >= t
        nxt = self._next_start()
        return nxt is None or nxt > t

    def _behind(self, at: float) -> tuple[list[str], list[str], int]:
        """(languages needed at call time ``at``, those whose newest request is older than the
        lines then, the newest revision then)."""
        available = [e for e in self._entries if e.available_at <= at]
        if not available:
            return [], [], 0
        revision = max(e.revision for e in available)
        needed = needed_languages(self._lines(at), self.default_language, self.max_languages)
        return needed, [lang for lang in needed if self._done.get(lang, 0) < revision], revision

    def _next_start(self) -> float | None:
        """Call time the worker starts its next request, if lines are waiting for one: the first
        moment from which the worker may start (free, the interval passed, the model not resting)
        at which some language needed lacks a set for the newest lines."""
        base = max(self._free_at, self._last_start + self.min_interval)
        if self._down_until is not None:
            base = max(base, self._down_until)
        later = sorted({e.available_at for e in self._entries if e.available_at > base})
        for at in [base, *later]:
            if self._behind(at)[1]:
                return at
        return None

    # -- the worker --------------------------------------------------------------------------

    def _work(self) -> None:
        suggester = self.suggester
        assert suggester is not None  # the worker is only started with a model to ask
        while True:
            with self._cond:
                while True:
                    if self._closing:
                        return
                    start = self._next_start()
                    if start is not None:
                        if self.clock.virtual:
                            if self.clock.now() >= start:
                                break
                            # Lines that a live call would have by then may not have come yet.
                            self._cond.release()
                            try:
                                self.clock.wait_until(start, 0.05)
                            finally:
                                self._cond.acquire()
                            continue
                        wait = start - self.clock.now()
                        if wait <= 0:
                            start = self.clock.now()
                            break
                        self._cond.wait(min(wait, 0.5))
                    else:
                        self._cond.wait(0.5)
                needed, behind, revision = self._behind(start)
                if not behind:  # a language left the window meanwhile: nothing waits from here on
                    self._last_start = start
                    continue
                # The language whose newest set is oldest; the conversation's first among equals.
                language = min(behind, key=lambda lang: (self._done.get(lang, 0), needed.index(lang)))
                lines = self._lines(start)
                avoid = [t for when, t in self._delivered if when <= start]
                self._done[language] = revision
                if not self.wanted():
                    self._cond.notify_all()
                    continue
                self._last_start = start
                flight = self._in_flight = _InFlight(start, time.perf_counter())
                self._cond.notify_all()
            result, error = self._request(lines, language, avoid, flight)
            with self._cond:
                ready_at = flight.progress() if self.clock.virtual else self.clock.now()
                seconds = time.perf_counter() - flight.wall0 + flight.slept
                self._in_flight = None
                self._free_at = ready_at
                if result == ([], []):
                    log.info("LLM %s had nothing new for this window", suggester.name)
                elif result is not None:
                    kept, dropped = result
                    self.stats.sets += 1
                    self.stats.generation_seconds.append(seconds)
                    for why in dropped:
                        self.stats.dropped[why] = self.stats.dropped.get(why, 0) + 1
                    self._ready.append(
                        SuggestionSet(kept, suggester.name, language, revision, start, ready_at, seconds)
                    )
                    same = [x for x in self._ready if x.language == language]
                    for old in same[:-4]:  # the newest few per language
                        self._ready.remove(old)
                    if self._down_until is not None:
                        log.warning("LLM %s answers again; model suggestions resume", suggester.name)
                    self._down_until, self._pause = None, self.down_pause
                else:
                    self.stats.failures += 1
                    if self._down_until is None:
                        log.warning(
                            "LLM %s at %s is not usable (%s); using built-in suggestions from the "
                            "conversation until it answers (retrying every %g s or more)",
                            suggester.name,
                            suggester.settings.base_url,
                            error,
                            self._pause,
                        )
                    self._down_until = ready_at + self._pause
                    self._pause = min(self._pause * 2, 300.0)
                self._cond.notify_all()

    def _request(
        self, lines: list[Line], language: str, avoid: list[str], flight: _InFlight
    ) -> tuple[tuple[list[str], list[str]] | None, str | None]:
        def sleep(seconds: float) -> None:
            if self.clock.virtual:
                flight.slept += seconds  # a live call would have waited; call time says so
            else:
                with self._cond:
                    self._cond.wait_for(lambda: self._closing, seconds)

        def once():
            self.stats.requests += 1
            return self.suggester.suggest(lines, language, avoid)

        try:
            return with_retries(once, retries=self.retries, backoff=self.backoff, sleep=sleep), None
        except LlmError as exc:
            if not exc.down:
                return ([], []), None
            return None, str(exc)
        except Exception as exc:  # a bug must not stop hints for the rest of the call
            log.exception("suggestion request failed")
            return None, f"{type(exc).__name__}: {exc}"
