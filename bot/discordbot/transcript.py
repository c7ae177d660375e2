"""The live transcript: utterances posted to Discord in batches, never faster than one message
per interval, so a busy call cannot run into Discord's rate limits.

The pipeline calls ``on_utterance`` from its worker threads; lines wait in a lock-guarded list
until the poster task on the event loop sends them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from bot.discordbot.kit import MESSAGE_LIMIT, call_clock, chunk, escape
from bot.pipeline import PipelineListener, Speaker, UtteranceEvent
from bot.speaker.tracker import Verdict
from storage.vocab import Verification

log = logging.getLogger(__name__)

MAX_MESSAGES_PER_FLUSH = 3
NAME_CHARS = 64  # a name as shown (Discord's own limit is 32)
# An utterance is at most 15 s (~300 characters); escaping can double it: a line (name, text,
# verdict note, all escaped) stays below MESSAGE_LIMIT, so chunk never has to cut one
# (and split an escape).
TEXT_CHARS = 800


def transcript_line(event: UtteranceEvent) -> str:
    return (
        f"`{call_clock(event.start)}` **{escape(event.speaker.name, NAME_CHARS)}**: {escape(event.text, TEXT_CHARS)}"
        f"{verdict_note(event.verdict)}"
    )


def verdict_note(verdict: Verdict | None) -> str:
    """A verdict in the live transcript, worded as ``replay`` prints it; only what needs
    attention shows (a verified line reads like an unverified one)."""
    if verdict is None:
        return ""
    if verdict.verification == Verification.MISMATCH:
        return f" \u26a0\ufe0f *[not their voice: {escape(verdict.label or 'unknown speaker', 64)}]*"
    if verdict.verification == Verification.UNKNOWN and verdict.label:
        return f" *[sounds like {escape(verdict.label, 64)}]*"
    return ""


Send = Callable[[str], Awaitable[object]]


class TranscriptPoster(PipelineListener):
    """Collects utterances; ``run()`` posts them every ``interval`` seconds through ``send``."""

    def __init__(self, send: Send, *, interval: float = 5.0) -> None:
        self.send = send
        self.interval = interval
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self.posted = 0  # messages sent
        self.failed = 0

    def on_utterance(self, event: UtteranceEvent) -> None:
        with self._lock:
            self._lines.append(transcript_line(event))

    def on_verdict(
        self, speaker: Speaker, utterance_id: int | None, start: float, end: float, verdict: Verdict
    ) -> None:
        # Later utterances changed an earlier verdict; the earlier line may already be posted.
        note = verdict_note(verdict) or (" *[their own voice after all]*" if verdict.verified else "")
        if not note:
            return
        with self._lock:
            self._lines.append(
                f"`{call_clock(start)}` **{escape(speaker.name, NAME_CHARS)}**: voice check revised:{note}"
            )

    def pending(self) -> int:
        with self._lock:
            return len(self._lines)

    async def flush(self, max_messages: int | None = MAX_MESSAGES_PER_FLUSH) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
        messages = chunk(lines, MESSAGE_LIMIT)
        if max_messages is not None and len(messages) > max_messages:
            # A backlog is spread over the next intervals instead of bursting.
            keep, rest = messages[:max_messages], messages[max_messages:]
            with self._lock:
                self._lines = [line for m in rest for line in m.split("\n")] + self._lines
            messages = keep
        for text in messages:
            try:
                await self.send(text)
                self.posted += 1
            except Exception:
                self.failed += 1
                log.exception("posting the live transcript failed")

    async def run(self) -> None:
        """Post until cancelled; a final ``flush(None)`` is the caller's job."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
