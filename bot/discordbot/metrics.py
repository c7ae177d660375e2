"""What the bot counts for ``/metrics``, and what ``/healthz`` checks (``[metrics]``).

``attach_metrics(manager)`` gives every session a listener counting its utterances, their
latency and queue delay (``bot.metrics``), and keeps the session's voice connection until its
listeners close, so that each scrape adds the receive counters of the calls in progress to
those of the calls that ended. ``health_checks(bot)`` says whether the gateway is connected
and the database answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bot import metrics
from bot.metrics import Kind, Sample
from bot.metricsserver import HealthCheck, MetricsServer
from bot.pipeline import PipelineListener, UtteranceEvent
from bot.voice.stats import ReceiveStats
from storage.vocab import SessionStatus

if TYPE_CHECKING:
    from bot.audio.segmenter import Segment
    from bot.config import Config
    from bot.discordbot.sessions import LiveSession, SessionManager
    from bot.pipeline import Speaker
    from storage.db import Database

RECEIVE_HELP = (
    "Voice packets of the calls this process listened to, by what became of them (bot/voice/stats.py: "
    "received, accepted, played, lost, late, decrypt_failures, e2ee_failures, ...)."
)


class VoiceTotals:
    """Receive counters: of the calls that ended, plus those of the calls in progress."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = ReceiveStats()
        self._live: dict[int, Any] = {}  # id(listener) -> the session's voice client

    def open(self, key: int, vc: Any) -> None:
        with self._lock:
            self._live[key] = vc

    def close(self, key: int) -> None:
        with self._lock:
            vc = self._live.pop(key, None)
            if vc is not None:
                self._ended.merge(_sum(vc))

    def samples(self) -> Iterable[Sample]:
        with self._lock:
            total = self._ended.copy()
            for vc in self._live.values():
                total.merge(_sum(vc))
            live = len(self._live)
        yield Sample("stalk_calls_in_progress", Kind.GAUGE, "Live calls this process is transcribing.", live)
        for f in fields(ReceiveStats):
            yield Sample(
                "stalk_voice_packets_total", Kind.COUNTER, RECEIVE_HELP, getattr(total, f.name), (("outcome", f.name),)
            )


def _sum(vc: Any) -> ReceiveStats:
    total = ReceiveStats()
    for stats in vc.receive_stats().values():  # the receiver's own lock guards them
        total.merge(stats)
    return total


class MetricsListener(PipelineListener):
    """Counts one session's utterances (on the pipeline's threads)."""

    def __init__(self, totals: VoiceTotals, vc: Any) -> None:
        self.totals = totals
        totals.open(id(self), vc)

    def on_utterance(self, event: UtteranceEvent) -> None:
        metrics.UTTERANCES.inc()
        metrics.LATENCY.observe(event.latency)
        metrics.PROCESSING.observe(event.processing_latency)
        metrics.QUEUE_DELAY.observe(event.queue_delay)  # measured by the transcription scheduler

    def on_rejected(self, speaker: Speaker, segment: Segment, reason: str) -> None:
        metrics.REJECTED.inc()

    def close(self) -> None:
        self.totals.close(id(self))


def attach_metrics(manager: SessionManager) -> VoiceTotals:
    """Count every session the manager starts from now on; the collector is added to
    ``bot.metrics.PROCESS`` (the caller removes it with what ``PROCESS.collect`` returned)."""
    totals = VoiceTotals()

    def factory(session: LiveSession) -> MetricsListener:
        metrics.CALLS_STARTED.inc()
        return MetricsListener(totals, session.vc)

    async def ended(session: LiveSession) -> None:
        status = session.summary.status if session.summary is not None else SessionStatus.FAILED
        metrics.CALLS_ENDED.inc(status=str(status))

    manager.listener_factories.append(factory)
    manager.ended_hooks.append(ended)
    return totals


def health_checks(bot: Any, db: Database) -> dict[str, HealthCheck]:
    def discord_check() -> tuple[bool, str]:
        if bot.is_closed():
            return False, "closed"
        if not bot.is_ready():
            return False, "connecting to the gateway"
        return True, f"connected, {len(bot.guilds)} servers, latency {bot.latency * 1000:.0f} ms"

    def database_check() -> tuple[bool, str]:
        with db.session() as s:
            s.execute(text("SELECT 1"))
        return True, db.label

    return {"discord": discord_check, "database": database_check}


def start_metrics(bot: Any, config: Config) -> Callable[[], None] | None:
    """With ``[metrics] enabled``: count the bot's sessions and serve /metrics and /healthz;
    returns what stops it all (None when off). A port in use is one StalkError."""
    if not config.metrics.enabled:
        return None
    totals = attach_metrics(bot.sessions)
    server = MetricsServer(config.metrics.host, config.metrics.port, health=health_checks(bot, bot.db))
    remove = metrics.PROCESS.collect(totals.samples)
    server.start()
    bot.metrics_server = server

    def stop() -> None:
        server.stop()
        remove()

    return stop
