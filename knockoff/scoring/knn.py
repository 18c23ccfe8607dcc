"""Raw counterfeit scores from nearest references: a soft k-NN log-odds.

For each photo the index returns its nearest references with cosine similarities. The raw
score is a soft k-NN log-odds over the k most similar references:

    raw = T * log sum_{fake refs} exp(s / T)  -  T * log sum_{genuine refs} exp(s / T)

At small temperature T it is the margin between the closest known fake and the closest
genuine reference; at larger T it counts votes. If one side is absent from the top k, its
closest member in the gallery stands in (or -1, the lowest cosine, when the gallery has
none), so the raw score is continuous, with no ties to blur the ranking. Which references
count is the caller's choice: matching passes only the photo's own product's.
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
