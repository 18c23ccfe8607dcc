"""Counterfeit scores from nearest references, and their calibration.

For each photo the index returns its nearest references with cosine similarities. The raw
score is a soft k-NN log-odds over the k most similar references:

    raw = T * log sum_{fake refs} exp(s / T)  -  T * log sum_{genuine refs} exp(s / T)

At small temperature T it is the margin between the closest known fake and the closest
genuine reference; at larger T it counts votes. If one side is absent from the top k, its
closest member in the gallery stands in (or -1, the lowest cosine, when the gallery has
none), so the raw score is continuous, with no ties to blur the ranking. Platt scaling fit on the validation
split maps it to a probability in [0, 1]; being monotone, it leaves ROC/PR ranking untouched.
The `flagged` threshold is the calibrated score that flags the most validation fakes while
keeping precision at or above the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_FLOOR_SIMILARITY = -1.0


@dataclass(frozen=True)
class ScorerParams:
    k: int = 10  # references that vote
    temperature: float = 0.02
    candidates: int = 50  # references fetched per photo: voters, stand-ins and evidence
    evidence: int = 3  # nearest genuine and nearest fake references reported per photo

    def to_dict(self) -> dict:
        return asdict(self)


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


def knn_log_odds(
    similarities: np.ndarray,
    neighbor_is_fake: np.ndarray,
    valid: np.ndarray,
    params: ScorerParams,
    nearest_fake: np.ndarray | None = None,
    nearest_genuine: np.ndarray | None = None,
) -> np.ndarray:
    """Raw counterfeit score per row from (n, candidates) similarities, sorted descending.

    `neighbor_is_fake` says which neighbours are known fakes; `valid` masks padding (FAISS
    returns id -1 when the gallery has fewer references than asked for). `nearest_fake` and
    `nearest_genuine` give, per row, the similarity of that side's closest reference found
    outside the candidates (NaN where not searched or none exists).
    """
    sims = np.asarray(similarities, dtype=np.float64)
    fake = np.asarray(neighbor_is_fake, dtype=bool) & valid
    genuine = ~np.asarray(neighbor_is_fake, dtype=bool) & valid
    return _side_strength(sims, fake, params, nearest_fake) - _side_strength(sims, genuine, params, nearest_genuine)


def _side_strength(sims: np.ndarray, member: np.ndarray, params: ScorerParams, outside: np.ndarray | None) -> np.ndarray:
    voters = member.copy()
    voters[:, params.k :] = False
    # Rows with no member among the k voters: the closest member among all candidates.
    no_voter = ~voters.any(axis=1)
    first_member = np.argmax(member, axis=1)
    has_member = member.any(axis=1)
    stand_in = no_voter & has_member
    voters[np.flatnonzero(stand_in), first_member[stand_in]] = True
    scaled = np.where(voters, sims / params.temperature, -np.inf)
    top = scaled.max(axis=1, initial=-np.inf)
    safe_top = np.where(np.isfinite(top), top, 0.0)
    total = np.exp(scaled - safe_top[:, None]).sum(axis=1)
    strength = params.temperature * (safe_top + np.log(np.where(total > 0, total, 1.0)))
    # ...or, with none among the candidates, the closest member found by a restricted search.
    fallback = _FLOOR_SIMILARITY if outside is None else np.where(np.isfinite(outside), outside, _FLOOR_SIMILARITY)
    return np.where(voters.any(axis=1), strength, fallback)


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
