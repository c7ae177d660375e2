"""Detection metrics for speaker-verification trials: EER and minimum DCF."""

from __future__ import annotations

import numpy as np


def _rates(target: np.ndarray, nontarget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-reject and false-accept rates for a threshold at each score (accept if score >= t)."""
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    order = np.argsort(scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # Threshold just above scores[i]: everything up to i rejected.
    frr = np.concatenate([[0.0], np.cumsum(labels) / max(len(target), 1)])
    far = np.concatenate([[1.0], 1 - np.cumsum(1 - labels) / max(len(nontarget), 1)])
    thresholds = np.concatenate([[scores[0] - 1e-6], scores + 1e-6])
    return frr, far, thresholds


def eer(target, nontarget) -> tuple[float, float]:
    """(equal error rate, threshold at it). With separable scores the threshold is the midpoint of the gap."""
    target, nontarget = np.asarray(target, float), np.asarray(nontarget, float)
    if len(target) and len(nontarget) and target.min() > nontarget.max():
        return 0.0, float((target.min() + nontarget.max()) / 2)
    frr, far, th = _rates(target, nontarget)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(th[i])


def min_dcf(target, nontarget, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """(normalised minimum detection cost, threshold at it), NIST SRE style."""
    frr, far, th = _rates(np.asarray(target, float), np.asarray(nontarget, float))
    cost = c_miss * p_target * frr + c_fa * (1 - p_target) * far
    norm = min(c_miss * p_target, c_fa * (1 - p_target))
    i = int(np.argmin(cost))
    return float(cost[i] / norm), float(th[i])
