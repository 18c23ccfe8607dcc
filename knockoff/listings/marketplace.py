"""A simulated marketplace built from real photos, to measure listing and seller verdicts.

No public dataset has sellers, so sellers are made of labelled photos (seeded):
- genuine shops: many listings of genuine monitored products (sneakers, packaged goods);
- counterfeit shops: every listing a fake;
- hidden counterfeit shops: a few fakes among many ordinary, unmonitored goods;
- mixed shops: genuine and fake sneakers side by side;
- unmonitored sellers: products nobody monitors (fruit and vegetables) only;
- grocery sellers: a monitored brand with genuine references only.
- genuine resellers: mostly the brand's official catalogue photos, at retail price (half of
  them listed as authorised in the catalogue); discount sellers: genuine goods at 60-80%;
- counterfeit shops price their fakes at 20-70% of retail (a quarter of them like genuine
  goods), and some lead a listing with a stolen official photo; replica shops sell studio
  shots (the fakes cut out on white, as a replica seller's catalogue shows them) and QC
  photos of fakes among other goods.
A listing has 1-3 photos of one product and authenticity; photos are drawn with replacement,
so the same photo recurs within and across sellers, as copied photos do. A seller is a
counterfeit seller when it sells at least one fake listing. Prices are in USD or, for a fifth
of the sellers, EUR (RATES).
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
    fake_price: tuple[float, float] = (0.2, 0.7)  # a fake listing's price over retail, drawn uniformly
    genuine_price: tuple[float, float] = (0.95, 1.08)  # a genuine listing's
    priced_like_genuine: float = 0.0  # share of its shops that price their fakes like genuine goods
    official: float = 0.0  # share of its sneaker listings that lead with one of the brand's official photos
    authorised: int = 0  # how many of its sellers the brand's catalogue lists as authorised


ARCHETYPES = (
    # Big genuine shops collect a few false flags over many listings; resellers mostly show
    # the brand's own catalogue photos, at retail price plus noise...
    Archetype("genuine-shop", 10, (40, 150), (("sneakers-genuine", 0.8), ("grocery", 0.2)), official=0.2),
    Archetype("genuine-reseller", 8, (20, 80), (("sneakers-genuine", 1.0),), official=0.7, authorised=4),
    Archetype("discount-seller", 5, (10, 40), (("sneakers-genuine", 0.8), ("grocery", 0.2)), genuine_price=(0.6, 0.8)),
    # ...while counterfeit shops price wide, some like genuine goods, some lead with a stolen official photo,
    Archetype("counterfeit-shop", 8, (1, 12), (("sneakers-fake", 1.0),), priced_like_genuine=0.25, official=0.3),
    # replica shops sell studio shots and QC photos of fakes among other goods,
    Archetype("replica-shop", 6, (10, 40), (("sneakers-fake-studio", 0.15), ("sneakers-fake", 0.15), ("unmonitored", 0.5),
                                            ("grocery", 0.2)), priced_like_genuine=0.25, official=0.3),
    # and small counterfeit shops hide one to three fakes among ordinary goods.
    Archetype("hidden-counterfeit", 8, (15, 60), (("unmonitored", 0.7), ("grocery", 0.3)), fakes=(1, 3), official=0.3),
    Archetype("mixed-shop", 4, (10, 20), (("sneakers-genuine", 0.5), ("sneakers-fake", 0.5))),
    Archetype("unmonitored-seller", 15, (5, 40), (("unmonitored", 1.0),)),
    Archetype("grocery-seller", 8, (5, 30), (("grocery", 1.0),)),
)
RETAIL = {"nike air force": 110.0, "nike jordan 1": 180.0}  # USD, the simulated catalogue's
RATES = {"USD": 1.0, "EUR": 1.08}  # value of one unit; a fifth of the sellers price in EUR
OTHER_GOODS_PRICE = (2.0, 8.0)  # groceries and produce, never in the catalogue


def pools(sneakers: list[ImageRecord], grocery: list[ImageRecord], unmonitored: list[ImageRecord],
          studio_fakes: list[ImageRecord] | None = None) -> dict[str, list[ImageRecord]]:
    """The photos each kind of listing draws on; `studio_fakes` are replica sellers' studio shots
    of fakes (without them, their own photos stand in)."""
    fakes = [r for r in sneakers if r.authenticity == FAKE]
    return {
        "sneakers-genuine": [r for r in sneakers if r.authenticity == GENUINE],
        "sneakers-fake": fakes,
        "sneakers-fake-studio": list(studio_fakes) if studio_fakes else fakes,
        "grocery": list(grocery),
        "unmonitored": list(unmonitored),
    }


def simulate(photo_pools: dict[str, list[ImageRecord]], seed: int = 0, archetypes: tuple[Archetype, ...] = ARCHETYPES,
             official_photos: dict[str, list[str]] | None = None) -> list[dict]:
    """Manifest rows (listing_id, seller_id, path, label, price, currency, truth columns) of a
    marketplace; `official_photos` (product -> the brand's photos) are what listings reuse."""
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
            shop = _Shop(seller, archetype, bool(rng.random() < archetype.priced_like_genuine),
                         "EUR" if rng.random() < 0.2 else "USD")
            for listing_number, kind in enumerate(kinds):
                listing = f"{seller}-L{listing_number:03d}"
                rows += _listing_photos(rng, photo_pools[kind], listing, shop, kind, official_photos or {})
    return rows


@dataclass(frozen=True)
class _Shop:
    seller: str
    archetype: Archetype
    fakes_priced_like_genuine: bool
    currency: str


def _listing_photos(rng: np.random.Generator, pool: list[ImageRecord], listing: str, shop: _Shop, kind: str,
                    official_photos: dict[str, list[str]]) -> list[dict]:
    first = pool[int(rng.integers(len(pool)))]
    same_product = [r for r in pool if r.product == first.product] or [first]
    photos = [first] + [same_product[int(rng.integers(len(same_product)))] for _ in range(int(rng.integers(0, 3)))]
    paths = [photo.path for photo in photos]
    official = official_photos.get(first.product or "")
    if official and kind.startswith("sneakers") and rng.random() < shop.archetype.official:
        paths = [official[int(rng.integers(len(official)))]] + paths[: int(rng.integers(0, len(paths)))]
    price = _price(rng, shop, first, kind)
    label = FAKE if kind.startswith("sneakers-fake") else first.authenticity
    return [{"listing_id": listing, "seller_id": shop.seller, "path": path, "label": label, "true_product": first.product,
             "seller_kind": shop.archetype.name, "pool": kind, "price": price, "currency": shop.currency,
             "title": f"{first.product or 'item'} ({shop.seller})"} for path in paths]


def _price(rng: np.random.Generator, shop: _Shop, photo: ImageRecord, kind: str) -> float:
    retail = RETAIL.get(photo.product or "")
    if retail is None:
        return round(float(rng.uniform(*OTHER_GOODS_PRICE)), 2)
    fake = kind.startswith("sneakers-fake") and not shop.fakes_priced_like_genuine
    low, high = shop.archetype.fake_price if fake else shop.archetype.genuine_price
    usd = retail * float(rng.uniform(low, high))
    return round(usd * RATES["USD"] / RATES[shop.currency], 2)


def authorised_sellers(archetypes: tuple[Archetype, ...] = ARCHETYPES) -> list[str]:
    """The sellers the simulated catalogue lists as authorised (the first few of some archetypes)."""
    return [f"{a.name}-{number:02d}" for a in archetypes for number in range(a.authorised)]


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
