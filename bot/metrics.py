"""This process's counters, in Prometheus' text exposition format (version 0.0.4).

Off by default (``[metrics] enabled``); when on, ``bot.metricsserver`` serves ``render()`` at
``/metrics`` on a local port. Counts only: no label names a guild, a channel or a person, so
a scrape says how the bot works, never who talked.

``PROCESS`` is the one registry of the process; what the bot counts is declared below it
(utterances, their latency and queue delay, rejected segments, calls, LLM requests and
failures). Counts that live elsewhere (voice receive, calls in progress) are added at each
scrape by collectors (``Registry.collect``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar


class Kind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Sample:
    """One value a collector reports at scrape time."""

    name: str
    kind: Kind
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class _Metric:
    def __init__(self, name: str, help: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, not {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)


class Counter(_Metric):
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(zip(self.label_names, key))} {_num(v)}" for key, v in items]


# Seconds: from well under the 1.2 s latency target to far past it.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class Histogram(_Metric):
    def __init__(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help, ())
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        if math.isnan(value):
            return
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def lines(self) -> list[str]:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._count
        out = [f'{self.name}_bucket{{le="{_num(b)}"}} {c}' for b, c in zip(self.buckets, counts)]
        out += [f'{self.name}_bucket{{le="+Inf"}} {n}', f"{self.name}_sum {_num(total)}", f"{self.name}_count {n}"]
        return out


Collector = Callable[[], Iterable[Sample]]
T = TypeVar("T", Counter, Histogram)


class Registry:
    def __init__(self) -> None:
        self._metrics: list[Counter | Histogram] = []
        self._collectors: list[Collector] = []
        self._lock = threading.Lock()

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help, labels))

    def histogram(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help, buckets))

    def _add(self, metric: T) -> T:
        with self._lock:
            if any(m.name == metric.name for m in self._metrics):
                raise ValueError(f"metric {metric.name} is declared twice")
            self._metrics.append(metric)
        return metric

    def collect(self, collector: Collector) -> Callable[[], None]:
        """Add ``collector`` (called at every scrape, from the server's thread); returns its removal."""
        with self._lock:
            self._collectors.append(collector)

        def remove() -> None:
            with self._lock:
                if collector in self._collectors:
                    self._collectors.remove(collector)

        return remove

    def render(self) -> str:
        with self._lock:
            metrics, collectors = list(self._metrics), list(self._collectors)
        out: list[str] = []
        for m in metrics:
            kind = Kind.HISTOGRAM if isinstance(m, Histogram) else Kind.COUNTER
            out += [f"# HELP {m.name} {_help(m.help)}", f"# TYPE {m.name} {kind}", *m.lines()]
        grouped: dict[str, list[Sample]] = {}
        for collector in collectors:
            for sample in collector():
                grouped.setdefault(sample.name, []).append(sample)
        for name, samples in grouped.items():
            first = samples[0]
            out += [f"# HELP {name} {_help(first.help)}", f"# TYPE {name} {first.kind}"]
            out += [f"{name}{_labels(s.labels)} {_num(s.value)}" for s in samples]
        return "\n".join(out) + "\n"


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in pairs]
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


PROCESS = Registry()

UTTERANCES = PROCESS.counter("stalk_utterances_total", "Utterances transcribed and stored.")
REJECTED = PROCESS.counter(
    "stalk_rejected_segments_total", "Speech segments not stored (hallucination filter, no text, ...)."
)
LATENCY = PROCESS.histogram(
    "stalk_utterance_latency_seconds", "From the last word of an utterance to its stored transcript (call time)."
)
PROCESSING = PROCESS.histogram(
    "stalk_utterance_processing_seconds",
    "From the end of an utterance being detected to its stored transcript (call time).",
)
QUEUE_DELAY = PROCESS.histogram(
    "stalk_transcription_queue_delay_seconds",
    "Of the processing time, the wait in the process's transcription scheduler for a worker (call time).",
)
CALLS_STARTED = PROCESS.counter("stalk_calls_started_total", "Live calls started.")
CALLS_ENDED = PROCESS.counter("stalk_calls_ended_total", "Live calls ended, by how they ended.", ("status",))
LLM_REQUESTS = PROCESS.counter("stalk_llm_requests_total", "Chat requests to the [llm] server (hints, summaries).")
LLM_FAILURES = PROCESS.counter(
    "stalk_llm_failures_total", "Chat requests to the [llm] server that failed (timeout, refused, bad answer)."
)
