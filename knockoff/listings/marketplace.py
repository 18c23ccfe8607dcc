"""A simulated marketplace built from real photos, to measure listing and seller verdicts.

No public dataset has sellers, so sellers are made of labelled photos (seeded):
- genuine shops: many listings of genuine monitored products (sneakers, packaged goods);
- counterfeit shops: every listing a fake;
- hidden counterfeit shops: a few fakes among many ordinary, unmonitored goods;
- mixed shops: genuine and fake sneakers side by side;
- unmonitored sellers: products nobody monitors (fruit and vegetables) only;
- grocery sellers: a monitored brand with genuine references only.
A listing has 1-3 photos of one product and authenticity; photos are drawn with replacement,
so the same photo recurs within and across sellers, as copied photos do. A seller is a
counterfeit seller when it sells at least one fake listing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knockoff.data.records import FAKE, GENUINE, ImageRecord


@dataclass(frozen=True)
class Archetype:
    name: str
    sellers: int
    listings: tuple[int, int]  # inclusive range per seller
    mix: tuple[tuple[str, float], ...]  # (pool, share of listings)
    fakes: tuple[int, int] | None = None  # for hidden shops: how many fake listings among the rest


ARCHETYPES = (
    # Big genuine shops collect a few false flags over many listings...
    Archetype("genuine-shop", 10, (40, 150), (("sneakers-genuine", 0.8), ("grocery", 0.2))),
    Archetype("counterfeit-shop", 8, (1, 12), (("sneakers-fake", 1.0),)),
    # ...while small counterfeit shops hide one to three fakes among ordinary goods.
    Archetype("hidden-counterfeit", 8, (15, 60), (("unmonitored", 0.7), ("grocery", 0.3)), fakes=(1, 3)),
    Archetype("mixed-shop", 4, (10, 20), (("sneakers-genuine", 0.5), ("sneakers-fake", 0.5))),
    Archetype("unmonitored-seller", 15, (5, 40), (("unmonitored", 1.0),)),
    Archetype("grocery-seller", 8, (5, 30), (("grocery", 1.0),)),
)


def pools(sneakers: list[ImageRecord], grocery: list[ImageRecord], unmonitored: list[ImageRecord]) -> dict[str, list[ImageRecord]]:
    return {
        "sneakers-genuine": [r for r in sneakers if r.authenticity == GENUINE],
        "sneakers-fake": [r for r in sneakers if r.authenticity == FAKE],
        "grocery": list(grocery),
        "unmonitored": list(unmonitored),
    }


def simulate(photo_pools: dict[str, list[ImageRecord]], seed: int = 0,
             archetypes: tuple[Archetype, ...] = ARCHETYPES) -> list[dict]:
    """Manifest rows (listing_id, seller_id, path, label, truth columns) of a marketplace."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for archetype in archetypes:
        for number in range(archetype.sellers):
            seller = f"{archetype.name}-{number:02d}"
            count = int(rng.integers(archetype.listings[0], archetype.listings[1] + 1))
            kinds = list(rng.choice([p for p, _ in archetype.mix], size=count, p=[s for _, s in archetype.mix]))
            if archetype.fakes:
                fakes = int(rng.integers(archetype.fakes[0], archetype.fakes[1] + 1))
                kinds[:fakes] = ["sneakers-fake"] * fakes
                rng.shuffle(kinds)
            for listing_number, kind in enumerate(kinds):
                listing = f"{seller}-L{listing_number:03d}"
                rows += _listing_photos(rng, photo_pools[kind], listing, seller, archetype.name, kind)
    return rows


def _listing_photos(rng: np.random.Generator, pool: list[ImageRecord], listing: str, seller: str, archetype: str,
                    kind: str) -> list[dict]:
    first = pool[int(rng.integers(len(pool)))]
    same_product = [r for r in pool if r.product == first.product] or [first]
    photos = [first] + [same_product[int(rng.integers(len(same_product)))] for _ in range(int(rng.integers(0, 3)))]
    return [{"listing_id": listing, "seller_id": seller, "path": photo.path, "label": photo.authenticity,
             "true_product": photo.product, "seller_kind": archetype, "pool": kind} for photo in photos]


def seller_truth(rows: list[dict]) -> dict[str, bool]:
    """Seller -> sells at least one fake listing."""
    truth: dict[str, bool] = {}
    for row in rows:
        truth[row["seller_id"]] = truth.get(row["seller_id"], False) or row["label"] == FAKE
    return truth


def listing_truth(rows: list[dict]) -> dict[str, bool]:
    """Listing -> at least one fake photo."""
    truth: dict[str, bool] = {}
    for row in rows:
        truth[row["listing_id"]] = truth.get(row["listing_id"], False) or row["label"] == FAKE
    return truth
