"""Data crossing the hints boundary: who gets a hint, what the hint is, what delivery reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Recipient:
    """A participant who may receive hints: present in the call and opted in."""

    key: str  # the pipeline's speaker key (replay NAME, Discord user id as text)
    name: str
    user_id: str | None = None


@dataclass(frozen=True)
class Hint:
    """One delivery: a few topic suggestions for one lull, for the recipients who speak its
    language (a lull in a call of several languages gives one hint per language)."""

    at: float  # call time a live call delivers it (stored as the suggestions' ``at``)
    texts: tuple[str, ...]  # plain text, no mentions or links, length-bounded
    sources: tuple[str, ...]  # per text: the model's name, or 'fallback'
    language: str  # ISO 639-1 code the texts are written in
    recipients: tuple[Recipient, ...]
    lull_start: float  # call time the group fell silent
    detected_at: float  # call time the lull was declared (lull_start + threshold)
    generated_at: float | None = None  # call time the model's set was ready (None: fallback only)
    generation_seconds: float | None = None  # how long the model took for that set
    signals: tuple[str, ...] = ()  # why it came sooner than plain silence (bot.hints.awkward.Signal values)

    @property
    def source(self) -> str:
        """The model's name if any text came from it, else 'fallback'."""
        return next((s for s in self.sources if s != "fallback"), "fallback")


@dataclass(frozen=True)
class RecipientResult:
    recipient: Recipient
    ok: bool
    error: str | None = None  # why it failed ("DMs closed", ...); None when ok


class HintDelivery(Protocol):
    """Sends a hint to its recipients. Called from a worker thread, never from an event loop:
    an asyncio implementation schedules its coroutine on its loop and waits for it
    (``asyncio.run_coroutine_threadsafe(...).result(timeout)``). It must try every recipient
    even when one fails, and return one result per recipient; exceptions it raises count as a
    failure for every recipient."""

    def deliver(self, hint: Hint) -> list[RecipientResult]: ...


RecipientProvider = Callable[[], list[Recipient]]


@dataclass
class SuggestionSet:
    """What the model (or the fallback) produced for one transcript window."""

    texts: list[str]
    source: str  # model name or 'fallback'
    language: str
    revision: int  # transcript revision it was built from
    started_at: float  # call time generation started
    ready_at: float  # call time it was ready
    seconds: float  # generation time (wall, including retries)
