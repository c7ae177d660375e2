"""Hints in ``replay``: printed into the transcript at the call time they would have been sent."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

from bot.clock import CallClock
from bot.config import Config
from bot.hints.engine import HintEngine, default_language
from bot.hints.types import Hint, Recipient, RecipientResult
from storage.export import short_clock
from storage.plaintext import plain
from storage.vocab import plural


class PrintingDelivery:
    """Delivers by printing: every recipient 'receives' the hint on the replay's output."""

    def __init__(self, out: TextIO | None = None, lock: threading.Lock | None = None) -> None:
        self.out = out or sys.stdout
        self.lock = lock or threading.Lock()

    def deliver(self, hint: Hint) -> list[RecipientResult]:
        names = ", ".join(plain(r.name) for r in hint.recipients)
        lines = [
            f"[{short_clock(hint.at)}] hint to {names} ({hint.source}, {hint.language}; "
            f"silence since {short_clock(hint.lull_start)}"
            + (f"; {', '.join(hint.signals)}" if hint.signals else "")
            + "):"
        ]
        lines += [f"    - {plain(text)}" for text in hint.texts]
        with self.lock:
            self.out.write("\n".join(lines) + "\n")  # one write: a log line cannot split it
            self.out.flush()
        return [RecipientResult(r, True) for r in hint.recipients]


def replay_recipients(engine: HintEngine, opted_out: list[str]) -> Callable[[], list[Recipient]]:
    """Every participant present, except the names the config opts out."""
    out = set(opted_out)
    return lambda: [r for r in engine.present() if r.name not in out]


def replay_engine(
    config: Config,
    clock: CallClock,
    out: TextIO,
    *,
    recorder=None,
    lock: threading.Lock | None = None,
    language: str | None = None,
) -> HintEngine:
    engine = HintEngine(
        config, clock, PrintingDelivery(out, lock), recorder=recorder, default_language=default_language(language)
    )
    engine.recipients = replay_recipients(engine, config.hints.replay_opt_out)
    return engine


def print_hints_summary(engine: HintEngine, out: TextIO) -> None:
    done = engine.stats.delivered
    gen = engine.preparer.stats.generation_seconds
    model = engine.suggester.name if engine.suggester else "none"
    parts = [f"hints: {len(done)} delivered"]
    if done:
        from_model = sum(1 for d in done for s in d.hint.sources if s != "fallback")
        total = sum(len(d.hint.texts) for d in done)
        parts.append(f"{from_model}/{plural(total, 'suggestion')} from the model {model}, the rest built in")
        parts.append("lull to delivery max " + f"{max(d.latency for d in done):.2f} s")
    answers = engine.suggester.answers if engine.suggester else 0
    if answers:
        # Answers the server gave, usable or not, and the sets that held usable suggestions.
        usable = f", {len(gen)} usable, mean {sum(gen) / len(gen):.1f} s" if gen else ", none usable"
        parts.append(f"model answers: {answers}{usable}")
    if engine.preparer.stats.failures:
        parts.append(plural(engine.preparer.stats.failures, "failed model request"))
    print("; ".join(parts), file=out, flush=True)
