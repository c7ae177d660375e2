"""Stopping a call on a signal without losing it: Ctrl+C (SIGINT), SIGTERM and SIGHUP.

Python turns SIGINT into a KeyboardInterrupt raised wherever the main thread happens to be,
and lets SIGTERM and SIGHUP kill the process outright. Either way a call in progress was
lost: the session stayed ``active``, utterances that had ended were never stored, and an
interrupt landing while the pipeline waited for its transcription threads left them inside
CTranslate2 at interpreter exit, which aborts with "terminate called without an active
exception" (exit 134).

``StopSignals`` replaces that for a command's lifetime:

* before a call exists (files probed, models loading) a signal stops at once, raising
  ``Interrupted``: nothing is stored yet;
* during the call (``with stop.call():``) a signal only asks to stop: the source checks
  ``stop.check()`` between frames and raises ``Interrupted`` at a clean point, so the
  pipeline then finishes the utterance in progress and every one that had ended, stores
  them and marks the session ``interrupted``;
* while that is going on (``stop.closing()``) further signals are acknowledged on stderr and
  otherwise ignored (obeying them would lose the utterances being finished). A first signal
  that comes then (at ``--speed 0`` the whole call is soon fed, and only its last
  transcriptions remain) lets the call complete: nothing of it is cut.

The process then exits 128 + the signal's number (130, 143, 129), as shells expect.
``early()`` covers the time before a command installs its own: imports and argument parsing.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """Signal handling for one command run from the main thread (see the module doc)."""

    def __init__(self, err: TextIO | None = None) -> None:
        self.err = err
        self.requested = threading.Event()
        self.signum: int | None = None
        self._phase = "setup"
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    @contextmanager
    def call(self) -> Iterator[None]:
        """While a call runs: signals ask it to stop (``check``) instead of raising anywhere."""
        self._phase = "call"
        try:
            yield
        finally:
            self._phase = "setup" if self._phase == "call" else self._phase

    def closing(self) -> None:
        """From now on (the call is being finished and stored) signals are acknowledged, not
        obeyed, until the command ends."""
        self._phase = "closing"

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal asked the call to stop."""
        if self.requested.is_set() and self.signum is not None:
            raise Interrupted(self.signum)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when a stop is asked for."""
        return self.requested.wait(seconds) if seconds > 0 else self.requested.is_set()

    def _say(self, text: str) -> None:
        print(text, file=self.err or sys.stderr, flush=True)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._phase == "setup":
            self.signum = signum
            self._phase = "closing"  # a second press while this unwinds is only acknowledged
            raise Interrupted(signum)
        if self._phase == "call" and not self.requested.is_set():
            self.signum = signum
            self.requested.set()
            self._say(f"{name}: stopping; finishing and storing the utterances already heard")
            return
        if self.signum is None:
            self.signum = signum
            self._say(f"{name}: the whole call has been heard; storing its last utterances, then stopping")
            return
        self._say(f"{name}: already stopping, finishing the utterances already heard (they are stored first)")


@contextmanager
def early() -> Iterator[None]:
    """Until a command installs its own handling: a stop signal raises ``Interrupted`` (one
    line and exit 128 + N from ``bot.cli``) instead of a traceback, or of dying on SIGTERM
    and SIGHUP. The handlers before are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
