"""Calibration of a raw score: Platt scaling and the flag threshold for a target precision.

Platt scaling fit on held-back labelled photos maps the raw score to a probability in
[0, 1]; being monotone, it leaves ROC/PR ranking untouched. Given how close each photo's
evidence is (its nearest reference of the product), the slope may depend on it: on new
photographs a far photo's margin between fakes and genuine references says less (sneakers
`valid`, new photographs: ROC-AUC 0.85 in the farthest quarter against 0.93 in the nearer
half), so its probability stays nearer the prior. The slope never turns negative.

The `flagged` threshold is the calibrated score that flags the most held-back fakes while
the precision, counting one more false flag than the held-back photos show (an unseen
genuine photo may score above every held-back one), stays at or above the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Calibration:
    """p(fake) = sigmoid(max(slope + closeness_slope * (closeness - closeness_center), 0) * raw
    + intercept); flagged = p >= threshold."""

    slope: float
    intercept: float
    threshold: float
    target_precision: float
    precision: float  # at the threshold, on the calibration set (with the one extra false flag)
    recall: float
    count: int
    source: str = ""
    closeness_slope: float = 0.0
    closeness_center: float = 0.0

    def probability(self, raw: np.ndarray, closeness: np.ndarray | None = None) -> np.ndarray:
        slope = self.slope
        if closeness is not None and self.closeness_slope:
            slope = np.maximum(slope + self.closeness_slope * (np.asarray(closeness, np.float64) - self.closeness_center), 0.0)
        return _sigmoid(slope * np.asarray(raw, dtype=np.float64) + self.intercept)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_calibration(
    raw: np.ndarray, is_fake: np.ndarray, target_precision: float, source: str = "", closeness: np.ndarray | None = None
) -> Calibration:
    """Platt scaling on (raw score, label) pairs (with `closeness`, a slope that depends on
    it), then the threshold for the target precision."""
    raw = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(is_fake, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("calibration needs both fake and genuine photos")
    if closeness is None:
        slope, intercept = fit_logistic(np.stack([raw, np.ones_like(raw)], axis=1), labels)
        calibration = Calibration(slope, intercept, 0.0, target_precision, 0.0, 0.0, int(raw.size), source)
    else:
        center = float(np.median(closeness))
        design = np.stack([raw, raw * (np.asarray(closeness, np.float64) - center), np.ones_like(raw)], axis=1)
        slope, closeness_slope, intercept = fit_logistic(design, labels)
        calibration = Calibration(slope, intercept, 0.0, target_precision, 0.0, 0.0, int(raw.size), source,
                                  closeness_slope, center)
    probabilities = calibration.probability(raw, closeness)
    threshold, precision, recall = threshold_for_precision(probabilities, labels.astype(bool), target_precision)
    return replace(calibration, threshold=threshold, precision=precision, recall=recall)


def threshold_for_precision(
    scores: np.ndarray, is_fake: np.ndarray, target_precision: float
) -> tuple[float, float, float]:
    """The threshold with the highest recall among those with precision >= target, and of
    those the highest (fewest false alarms): (threshold, precision, recall). Precision counts
    one false flag more than the held-back photos show, hits / (flagged + 1): fit on a
    hundred photos, an unseen genuine photo may well score above every held-back one.

    If no threshold reaches the target, the threshold is just above the top score (nothing
    is flagged) and precision is reported as 0.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    hits = np.cumsum(is_fake[order])
    flagged = np.arange(1, scores.size + 1)
    # Only cut between distinct scores: all photos with the same score share a decision.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    precision = hits / (flagged + 1)
    ok = last_of_run & (precision >= target_precision)
    if not ok.any():
        return float(np.nextafter(sorted_scores[0], np.inf)), 0.0, 0.0
    best_hits = hits[np.flatnonzero(ok)[-1]]  # hits only grow as the threshold drops
    cut = np.flatnonzero(ok & (hits == best_hits))[0]
    return float(sorted_scores[cut]), float(precision[cut]), float(hits[cut] / max(is_fake.sum(), 1))


def fit_logistic(design: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 100) -> tuple[float, ...]:
    """Logistic regression on the design's columns by Newton's method (tiny ridge keeps it
    finite when the classes are perfectly separable)."""
    weights = np.zeros(design.shape[1])
    for _ in range(steps):
        p = _sigmoid(design @ weights)
        gradient = design.T @ (p - y) / y.size + l2 * weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design / y.size + l2 * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return tuple(float(w) for w in weights)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
