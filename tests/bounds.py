"""Assertions on what a model produced, held to bounds set from measured spread.

Model output is not bit-identical across machines (instruction sets, thread counts, the timing
of packets through the voice double), so a test on transcripts asserts an error rate over
enough words, with a bound that the variation measured by ``benchmarks/spread.py`` stays well
inside. Each check records its value when ``STALK_SPREAD_LOG`` names a file, which is how that
script collects the spread; the bound in the test is the one the figures in docs justify.
"""

from __future__ import annotations

import json
import os
import threading

_lock = threading.Lock()


def _record(name: str, value: float, bound: float, kind: str) -> None:
    path = os.environ.get("STALK_SPREAD_LOG")
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    row = {"name": name, "value": round(float(value), 4), "bound": bound, "kind": kind, "test": test}
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def at_most(name: str, value: float, bound: float, detail: object = "") -> None:
    """``value`` (an error rate, a count of misses) must not exceed ``bound``."""
    _record(name, value, bound, "at_most")
    assert value <= bound, f"{name} = {value:.3f}, above its bound {bound} {detail}"


def at_least(name: str, value: float, bound: float, detail: object = "") -> None:
    """``value`` (a margin, a count of hits) must reach ``bound``."""
    _record(name, value, bound, "at_least")
    assert value >= bound, f"{name} = {value:.3f}, below its bound {bound} {detail}"
