"""A listing's evidence beyond its photos, each signal with a likelihood ratio learned from labelled listings.

Analysts read a listing through more than its photos. Two signals join the image verdict:

- `price`: the listing's price over its product's retail price in the brand's catalogue
  (knockoff/data/catalogue.py), converted with the user's rates table, in bands;
- `reuse`: whether the listing shows one of the brand's official photos (a copy of an
  `official` reference), and who reuses it: a seller the catalogue lists as authorised, one it
  does not list, or anyone where the catalogue lists nobody.

Each band's likelihood ratio is P(band | counterfeit listing) / P(band | genuine listing),
counted on labelled listings (analysts' confirmed decisions, `knockoff decisions export`, or a
labelled manifest's `knockoff listings` output) on top of a prior of `strength` pseudo-listings
per class spread as the previous ratios spread them (none before: every ratio 1). So a band
seen rarely keeps its prior, and confirmed decisions move the ratios as far as their numbers
warrant. A signal that does not apply (no catalogued product, no price, no rate, a catalogue
without official photos) has ratio 1: missing is not evidence.

The image verdict's ratio is the calibrated photo evidence itself: the odds of the listing's
p(counterfeit) at the run's share of fakes over that share's odds (verdicts.py). Nothing is
counted twice: a photo that copies an official photo is not judged as a photo (its status is
`copy`), so it enters as reuse only; a copy of a known fake enters as image evidence only.
Signals are combined as independent given the truth (naive Bayes); the marketplace benchmark
reports what each adds, measured on sellers the ratios were not fit on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from knockoff.data.catalogue import Catalogue
from knockoff.listings.calibration import odds

PRICE_EDGES = (0.35, 0.5, 0.65, 0.8, 0.95, 1.1)  # price over retail; bands between them
PRICE_BANDS = ("under 35%", "35-50%", "50-65%", "65-80%", "80-95%", "95-110%", "over 110%")
REUSE_KINDS = ("none", "authorised seller", "unauthorised seller", "seller unknown to the brand")
SIGNALS = {"price": PRICE_BANDS, "reuse": REUSE_KINDS}
CLASSES = ("fake", "genuine")
DEFAULT_STRENGTH = 20.0  # pseudo-listings per band the prior weighs


@dataclass
class SignalRatios:
    """Per signal, each band's likelihood ratio, and how many labelled listings it was fit on."""

    ratios: dict[str, list[float]]
    fitted_on: str = "no labelled listings (every ratio 1)"
    listings: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})  # labelled listings counted
    strength: float = DEFAULT_STRENGTH
    seen: dict[str, list[int]] = field(default_factory=lambda: {name: [0] * len(b) for name, b in SIGNALS.items()})
    # the share of fakes among labelled listings none of whose photos could be judged (only
    # copies of official photos, say) but with a signal: their prior, which the run's share of
    # fakes among judged photos is not; None: none seen (the run's share stands in)
    unjudged_prior: float | None = None
    unjudged_listings: int = 0
    # the ratios these were fit from (None: never fit), so that refitting on a later, larger
    # export of the same decisions starts from the same prior and counts no listing twice
    prior: dict | None = None

    @classmethod
    def neutral(cls, strength: float = DEFAULT_STRENGTH) -> SignalRatios:
        return cls({name: [1.0] * len(bands) for name, bands in SIGNALS.items()}, strength=strength)

    def ratio(self, signal: str, band: np.ndarray) -> np.ndarray:
        """The likelihood ratio of each band index (-1: the signal does not apply, ratio 1)."""
        ratios = np.asarray(self.ratios[signal], np.float64)
        band = np.asarray(band, np.int64)
        return np.where(band >= 0, ratios[np.clip(band, 0, len(ratios) - 1)], 1.0)

    def weighs(self, signal: str) -> bool:
        """Whether any band of the signal has a ratio other than 1 (neutral ratios weigh nothing)."""
        return bool(np.any(np.abs(np.log(self.ratio(signal, np.arange(len(SIGNALS[signal]))))) > 1e-9))

    def base(self) -> SignalRatios:
        """The ratios these were fit from: the prior to refit on a new export of all decisions."""
        return SignalRatios.from_json(json.dumps(self.prior)) if self.prior else self

    def refit(self, bands: dict[str, np.ndarray], fake: np.ndarray, source: str, strength: float | None = None,
              unjudged: np.ndarray | None = None) -> SignalRatios:
        """These ratios as the prior, updated by labelled listings: `bands[signal]` their band
        indices (-1: not applicable, not counted), `fake` their truth, `unjudged` whether none
        of their photos was judged.

        Per band, the share of fakes among its listings is estimated as (fakes in it + strength ×
        the share the prior ratio implies) / (listings in it + strength), the prior share being
        the prior ratio applied to the labelled listings' overall share of fakes; the ratio is
        that share's odds over the overall odds. A band no labelled listing falls in keeps its
        prior ratio (1 to begin with), however unequal the two classes' numbers; a band seen
        often takes the ratio its listings show."""
        strength = self.strength if strength is None else strength
        fake = np.asarray(fake, bool)
        unjudged = np.zeros(len(fake), bool) if unjudged is None else np.asarray(unjudged, bool)
        applies = np.any([np.asarray(b) >= 0 for b in bands.values()], axis=0) if len(fake) else np.zeros(0, bool)
        chosen = unjudged & applies
        fakes_seen, count = int(fake[chosen].sum()), int(chosen.sum())
        if self.unjudged_prior is not None:
            unjudged_prior = (fakes_seen + strength * self.unjudged_prior) / (count + strength)
        else:
            unjudged_prior = (fakes_seen + 0.5) / (count + 1.0) if count else None
        ratios = {name: list(values) for name, values in self.ratios.items()}
        seen = {name: list(values) for name, values in self.seen.items()}
        for signal, names in SIGNALS.items():
            band = np.asarray(bands[signal], np.int64)
            labelled = band >= 0
            overall = float(fake[labelled].mean()) if labelled.any() else math.nan
            if not 0 < overall < 1:
                continue  # one class only: nothing to compare
            fakes = np.bincount(band[labelled & fake], minlength=len(names)).astype(np.float64)
            totals = np.bincount(band[labelled], minlength=len(names)).astype(np.float64)
            prior_odds = np.asarray(self.ratios[signal], np.float64) * odds(overall)
            share = (fakes + strength * prior_odds / (1 + prior_odds)) / (totals + strength)
            ratios[signal] = (odds(share) / odds(overall)).tolist()
            seen[signal] = (np.asarray(seen[signal]) + totals.astype(np.int64)).tolist()
        counted = {"fake": self.listings["fake"] + int(fake.sum()), "genuine": self.listings["genuine"] + int((~fake).sum())}
        return SignalRatios(ratios, source, counted, strength, seen, unjudged_prior, self.unjudged_listings + count,
                            prior=asdict(self))

    def only(self, signals: tuple[str, ...]) -> SignalRatios:
        """These ratios with every other signal's set to 1 (what a signal adds, measured)."""
        neutral = SignalRatios.neutral(self.strength)
        ratios = {name: self.ratios[name] if name in signals else neutral.ratios[name] for name in SIGNALS}
        return SignalRatios(ratios, self.fitted_on, dict(self.listings), self.strength, dict(self.seen),
                            self.unjudged_prior if signals else None, self.unjudged_listings if signals else 0, self.prior)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> SignalRatios:
        values = json.loads(text)
        for signal, names in SIGNALS.items():
            given = values["ratios"][signal]
            if len(given) != len(names) or not all(isinstance(r, (int, float)) and r > 0 for r in given):
                raise ValueError(f"signal ratios: {signal} needs {len(names)} positive ratios ({', '.join(names)})")
        seen = values.get("seen") or {name: [0] * len(b) for name, b in SIGNALS.items()}
        return cls({k: [float(r) for r in v] for k, v in values["ratios"].items()}, values.get("fitted_on", ""),
                   values.get("listings", {c: 0 for c in CLASSES}), float(values.get("strength", DEFAULT_STRENGTH)), seen,
                   values.get("unjudged_prior"), int(values.get("unjudged_listings", 0)), values.get("prior"))


def strength_words(ratio: float) -> str:
    if not math.isfinite(ratio) or abs(math.log(ratio)) < math.log(1.1):
        return "as common among genuine listings as among counterfeits"
    if ratio >= 1:
        return f"{ratio:.1f}× more common among counterfeit listings"
    return f"{1 / ratio:.1f}× more common among genuine listings"


def read_ratios(path: Path) -> SignalRatios:
    if not Path(path).is_file():
        raise FileNotFoundError(f"signal ratios {path} not found")
    try:
        return SignalRatios.from_json(Path(path).read_text())
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"signal ratios {path}: not a ratios file ({error})") from None


def price_band(ratio: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Band index of each price ratio, -1 where there is none."""
    values = pc.fill_null(pc.cast(ratio, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    return np.where(np.isfinite(values), np.searchsorted(np.asarray(PRICE_EDGES), values, side="right"), -1)


def reuse_band(kind: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Band index of each reuse kind, -1 where it does not apply (null)."""
    return pc.fill_null(pc.index_in(pc.cast(kind, pa.string()), value_set=pa.array(REUSE_KINDS)), -1).to_numpy(
        zero_copy_only=False).astype(np.int64)


def labelled_listings(listings: pa.Table, keep: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """What `SignalRatios.refit` takes from a listings table (LISTING_SCHEMA): the bands, the
    truth and whether none of the photos was judged, of its labelled listings (`keep` among them)."""
    label = np.array(listings.column("label").to_pylist(), dtype=object)
    chosen = np.array([value in CLASSES for value in label], bool) & (True if keep is None else np.asarray(keep, bool))
    unjudged = np.array([status != "scored" for status in listings.column("status").to_pylist()], bool)
    return ({name: band[chosen] for name, band in listing_bands(listings).items()}, label[chosen] == "fake", unjudged[chosen])


def listing_bands(listings: pa.Table) -> dict[str, np.ndarray]:
    """Per signal, each listing's band (LISTING_SCHEMA's price_ratio and official_reuse)."""
    return {"price": price_band(listings.column("price_ratio")), "reuse": reuse_band(listings.column("official_reuse"))}


CATALOGUE_KEY = b"knockoff.catalogue"  # results metadata: the gallery's catalogue (Catalogue.to_dict)
RATIOS_KEY = b"knockoff.listing_signals"  # results metadata: the SignalRatios screening was given


@dataclass(frozen=True)
class ListingContext:
    """What a run's listings are weighed with besides their photos."""

    catalogue: Catalogue | None = None
    ratios: SignalRatios = field(default_factory=SignalRatios.neutral)

    def lines(self) -> list[str]:
        if self.catalogue is None:
            return ["no catalogue with the gallery: listings are judged by their photos alone"]
        return [f"catalogue {self.catalogue.source or '(unnamed)'}: {len(self.catalogue.products)} products; "
                f"signal ratios fit on {self.ratios.fitted_on} ({self.ratios.listings['fake']} counterfeit, "
                f"{self.ratios.listings['genuine']} genuine listings)"]


def read_listing_context(metadata: dict[bytes, bytes]) -> ListingContext:
    """The catalogue and signal ratios a results file carries (its Parquet metadata)."""
    catalogue = Catalogue.from_dict(json.loads(metadata[CATALOGUE_KEY])) if CATALOGUE_KEY in metadata else None
    ratios = SignalRatios.from_json(metadata[RATIOS_KEY]) if RATIOS_KEY in metadata else SignalRatios.neutral()
    return ListingContext(catalogue, ratios)


def signals_apply(listing: dict) -> bool:
    """Whether a listing row (LISTING_SCHEMA) has a signal beyond its photos: a price to compare, or official photos to reuse."""
    return listing.get("price_ratio") is not None or listing.get("official_reuse") is not None


def signal_words(listing: dict) -> list[str]:
    """Each signal's contribution to a listing row (LISTING_SCHEMA) in words, strongest first."""
    parts: list[tuple[float, str]] = []
    if listing.get("image_lr") is not None:
        ratio = listing["image_lr"]
        parts.append((ratio, f"photos: {_odds_words(ratio)}"))
    if listing.get("price_ratio") is not None:
        ratio = listing.get("price_ratio_lr") or 1.0
        parts.append((ratio, f"price {listing['price_ratio']:.0%} of retail: {strength_words(ratio)}"))
    kind = listing.get("official_reuse")
    if kind is not None:
        ratio = listing.get("reuse_lr") or 1.0
        what = "no official photo reused" if kind == REUSE_KINDS[0] else f"reuses an official brand photo ({kind})"
        parts.append((ratio, f"{what}: {strength_words(ratio)}"))
    return [text for _, text in sorted(parts, key=lambda part: -abs(math.log(max(part[0], 1e-12))))]


def _odds_words(ratio: float) -> str:
    if not math.isfinite(ratio) or abs(math.log(max(ratio, 1e-12))) < math.log(1.1):
        return "no more like a counterfeit than a genuine listing"
    if ratio >= 1:
        return f"{ratio:.1f}× the odds of a counterfeit at this run's share of fakes"
    return f"{1 / ratio:.1f}× the odds of a genuine listing at this run's share of fakes"
