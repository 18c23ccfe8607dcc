"""Ranking metrics in plain numpy (the screening install has no scikit-learn)."""

from __future__ import annotations

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at each distinct score threshold, from (0, 0)."""
    hits, flagged, _ = _cumulative_counts(labels, scores)
    positives, negatives = hits[-1], flagged[-1] - hits[-1]
    tpr = np.r_[0.0, hits / max(positives, 1)]
    fpr = np.r_[0.0, (flagged - hits) / max(negatives, 1)]
    return fpr, tpr


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def precision_recall_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at each distinct threshold, highest threshold first."""
    hits, flagged, _ = _cumulative_counts(labels, scores)
    return hits / flagged, hits / max(hits[-1], 1)


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Sum over thresholds of precision x recall increment (scikit-learn's definition)."""
    precision, recall = precision_recall_curve(labels, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def recall_at_precision(labels: np.ndarray, scores: np.ndarray, min_precision: float) -> float:
    """The highest recall of any threshold whose precision is at least min_precision."""
    precision, recall = precision_recall_curve(labels, scores)
    reached = precision >= min_precision
    return float(recall[reached].max()) if reached.any() else 0.0


def _cumulative_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.size == 0 or labels.all() or not labels.any():
        raise ValueError("ranking metrics need both positive and negative examples")
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    hits = np.cumsum(labels[order])[distinct].astype(np.float64)
    flagged = (distinct + 1).astype(np.float64)
    return hits, flagged, sorted_scores[distinct]
