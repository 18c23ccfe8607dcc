"""Calibration of a raw score: Platt scaling and the flag threshold for a target precision.

Platt scaling fit on held-back labelled photos maps the raw score to a probability in
[0, 1]; being monotone, it leaves ROC/PR ranking untouched. The `flagged` threshold is the
calibrated score that flags the most held-back fakes while keeping precision at or above
the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """p(fake) = sigmoid(slope * raw + intercept); flagged = p >= threshold."""

    slope: float
    intercept: float
    threshold: float
    target_precision: float
    precision: float  # at the threshold, on the calibration set
    recall: float
    count: int
    source: str = ""

    def probability(self, raw: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * np.asarray(raw, dtype=np.float64) + self.intercept)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_calibration(
    raw: np.ndarray, is_fake: np.ndarray, target_precision: float, source: str = ""
) -> Calibration:
    """Platt scaling on (raw score, label) pairs, then the threshold for the target precision."""
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(is_fake, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("calibration needs both fake and genuine photos")
    slope, intercept = _fit_logistic(raw, labels)
    probabilities = _sigmoid(slope * raw + intercept)
    threshold, precision, recall = threshold_for_precision(probabilities, labels.astype(bool), target_precision)
    return Calibration(
        slope, intercept, threshold, target_precision, precision, recall, int(raw.size), source
    )


def threshold_for_precision(
    scores: np.ndarray, is_fake: np.ndarray, target_precision: float
) -> tuple[float, float, float]:
    """The threshold with the highest recall among those with precision >= target, and of
    those the highest (fewest false alarms): (threshold, precision, recall).

    If no threshold reaches the target, the threshold is just above the top score (nothing
    is flagged) and precision is reported as 0.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = np.cumsum(is_fake[order])
    flagged = np.arange(1, scores.size + 1)
    # Only cut between distinct scores: all photos with the same score share a decision.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    precision = hits / flagged
    ok = last_of_run & (precision >= target_precision)
    if not ok.any():
        return float(np.nextafter(sorted_scores[0], np.inf)), 0.0, 0.0
    best_hits = hits[np.flatnonzero(ok)[-1]]  # hits only grow as the threshold drops
    cut = np.flatnonzero(ok & (hits == best_hits))[0]
    return float(sorted_scores[cut]), float(precision[cut]), float(hits[cut] / max(is_fake.sum(), 1))


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 100) -> tuple[float, float]:
    """Two-parameter logistic regression by Newton's method (tiny ridge keeps it finite when
    the classes are perfectly separable)."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    weights = np.zeros(2)
    for _ in range(steps):
        p = _sigmoid(design @ weights)
        gradient = design.T @ (p - y) / y.size + l2 * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design / y.size + l2 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(weights[0]), float(weights[1])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
