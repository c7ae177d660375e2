"""Decision thresholds per model, measured by ``benchmarks/calibrate_speaker.py``.

Scores of different models live on different scales, so a threshold belongs to one model
file (its sha256). An uncalibrated model falls back to ``FALLBACK_THRESHOLD`` with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.json")
FALLBACK_THRESHOLD = 0.5


def calibrations() -> dict[str, dict]:
    try:
        return json.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def threshold_for(model_id: str, model_name: str = "", override: float = 0.0) -> float:
    """``override`` if set (> 0), else the calibrated threshold, else the fallback."""
    if override > 0:
        return override
    entry = calibrations().get(model_id)
    if entry is None:
        log.warning(
            "speaker model %s has no calibrated threshold; using %.2f (run benchmarks/calibrate_speaker.py "
            "or set speaker.threshold)",
            model_name or model_id[:12],
            FALLBACK_THRESHOLD,
        )
        return FALLBACK_THRESHOLD
    return float(entry["threshold"])
