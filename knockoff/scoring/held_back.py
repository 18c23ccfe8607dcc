"""The held-back photos' verdicts that listing calibration reads (`knockoff listings`).

`knockoff index` screens its held-back photos and keeps, per product pool, the
p(counterfeit) each was given: with the pools' fallback (product, then its group, then
everything) and the listing targets, they are stored in gallery.json and carried in every
results file's metadata under METADATA_KEY. `knockoff/listings/calibration.py` turns them
into listing thresholds on the run being judged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

METADATA_KEY = b"knockoff.held_back_scores"
GLOBAL = "global"


@dataclass(frozen=True)
class HeldBackPool:
    """p(counterfeit) of the held-back photos screening judged (`scored`), as screening gave it."""

    genuine: list[float]
    fakes: list[float]

    def rates(self, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(TPR, FPR) at each threshold: shares of held-back fakes and genuine photos scored at or above it."""
        return share_at_or_above(self.fakes, thresholds), share_at_or_above(self.genuine, thresholds)

    @property
    def prevalence(self) -> float:
        return len(self.fakes) / max(len(self.fakes) + len(self.genuine), 1)

    def separating_threshold(self) -> float:
        """The held-back fake score where TPR - FPR is largest, the lowest of equals (adjusted
        classify-and-count reads the run here)."""
        candidates = np.unique(self.fakes)
        tpr, fpr = self.rates(candidates)
        return float(candidates[np.argmax(tpr - fpr)])


@dataclass(frozen=True)
class HeldBackScores:
    """Per pool (product, its group, or everything), the held-back photos' scores; which pool
    each product reads; and the targets the listing thresholds are set for."""

    target_precision: float
    false_flag_rate: float  # a genuine-only product's listing false-flag rate
    pools: dict[str, HeldBackPool]
    products: dict[str, str]  # product -> pool name

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> HeldBackScores:
        values = json.loads(text)
        return cls(values["target_precision"], values["false_flag_rate"],
                   {name: HeldBackPool(**pool) for name, pool in values["pools"].items()}, values["products"])


def fit_held_back_scores(product: list[str], catalogue: dict[str, tuple[str, bool]], status: list[str],
                         score: np.ndarray, is_fake: np.ndarray, target_precision: float, false_flag_rate: float,
                         min_per_class: int, min_photos: int) -> HeldBackScores:
    """Pools of held-back photos' verdicts (each judged against its own `product`), falling
    back from the product to its group to everything like the photo calibrations do.
    `catalogue`: product -> (group, has known fakes). A product with known fakes pools only
    products with known fakes; a genuine-only one, genuine-only ones."""
    names = np.array(product, dtype=object)
    groups = np.array([catalogue[p][0] for p in product], dtype=object)
    scored = np.array([s == "scored" for s in status]) & np.isfinite(score)
    same_kind = {kind: np.array([catalogue[p][1] == kind for p in product], bool) for kind in (True, False)}
    pools: dict[str, HeldBackPool] = {}
    chosen: dict[str, str] = {}
    for name in sorted(catalogue):
        group_of, kind = catalogue[name]
        levels = [(f"product:{name}", names == name), (f"group:{group_of}", groups == group_of), (GLOBAL, np.ones(len(names), bool))]
        for level, members in levels:
            members = members & same_kind[kind] & scored
            fakes, genuine = score[members & is_fake], score[members & ~is_fake]
            enough = min(len(fakes), len(genuine)) >= min_per_class if kind else len(genuine) >= min_photos
            if enough or level == GLOBAL:
                key = level if level != GLOBAL else f"{GLOBAL}:{'fakes' if kind else 'genuine-only'}"
                pools.setdefault(key, HeldBackPool(sorted(round(float(v), 6) for v in genuine),
                                                   sorted(round(float(v), 6) for v in fakes) if kind else []))
                chosen[name] = key
                break
    return HeldBackScores(target_precision, false_flag_rate, pools, chosen)


def share_at_or_above(ascending: list[float], thresholds: np.ndarray) -> np.ndarray:
    """The share of `ascending` (sorted scores) at or above each threshold."""
    thresholds = np.asarray(thresholds, np.float64)
    if not ascending:
        return np.zeros(thresholds.shape)
    below = np.searchsorted(np.asarray(ascending, np.float64), thresholds, side="left")
    return (len(ascending) - below) / len(ascending)
