"""The one record type every reader produces and every stage consumes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

GENUINE = "genuine"
FAKE = "fake"
# Background references: photos of products nobody monitors (never a listing's label).
UNMONITORED = "unmonitored"
# The `source` of a reference that is the brand's own photo (its catalogue, knockoff/data/catalogue.py).
OFFICIAL = "official"

# Words that marketplaces, datasets and analysts use for the two authenticity labels.
_AUTHENTICITY_WORDS = {
    "genuine": GENUINE,
    "original": GENUINE,
    "authentic": GENUINE,
    "real": GENUINE,
    "legit": GENUINE,
    "fake": FAKE,
    "counterfeit": FAKE,
    "replica": FAKE,
    "knockoff": FAKE,
}


def parse_authenticity(value: object) -> str | None:
    """Map a free-form label ('original', 'Counterfeit', 1/0, True) to 'genuine'/'fake'/None.

    Numbers and booleans follow the screening convention: 1/True = fake.
    Raises ValueError for a label that is present but not understood, so that a typo in a
    manifest is an error instead of a silently unlabelled reference.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return FAKE if value else GENUINE
    if isinstance(value, (int, float)):
        if value != value:  # NaN from pandas-written files
            return None
        if value in (0, 1):
            return FAKE if value == 1 else GENUINE
        raise ValueError(f"authenticity label {value!r} is not 0/1")
    text = str(value).strip().lower()
    if text in ("", "none", "null", "nan", "unknown"):
        return None
    if text in ("0", "1"):
        return FAKE if text == "1" else GENUINE
    if text in _AUTHENTICITY_WORDS:
        return _AUTHENTICITY_WORDS[text]
    raise ValueError(
        f"authenticity label {value!r} is not one of {sorted(_AUTHENTICITY_WORDS)} or 0/1"
    )


def is_authenticity_word(text: str) -> bool:
    return text.strip().lower() in _AUTHENTICITY_WORDS


def class_name(product: str, authenticity: str) -> str:
    """A photo's class, product x authenticity: what training learns, and what the copies of
    one photograph must agree on."""
    return f"{product} | {authenticity}"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image to embed: a listing photo to screen, or a labelled reference.

    `path` is a local path or a URL. `product` is what the photo shows (or claims to show,
    for a listing); `authenticity` is 'genuine', 'fake' or None when unknown. A listing
    photo may carry its listing's fields: several photos share a `listing_id`, listings a
    `seller_id` (knockoff/listings aggregates them).
    """

    path: str
    listing_id: str | None = None
    product: str | None = None
    authenticity: str | None = None
    brand: str | None = None
    source: str | None = None
    # Set when the input line itself could not be read (a broken manifest line): screening
    # makes it one error row instead of stopping the run.
    error: str | None = None
    seller_id: str | None = None
    marketplace: str | None = None
    listing_url: str | None = None  # the listing's page (a takedown notice names it)
    title: str | None = None
    price: float | None = None
    currency: str | None = None

    @property
    def class_name(self) -> str:
        """The metric-learning class: product x authenticity."""
        if self.product is None or self.authenticity is None:
            raise ValueError(f"{self.path}: a training record needs product and authenticity")
        return class_name(self.product, self.authenticity)

    @property
    def known_class(self) -> str | None:
        """Its class, None for a photo without product or authenticity (unlabelled)."""
        return class_name(self.product, self.authenticity) if self.product and self.authenticity else None

    def to_dict(self) -> dict[str, str | float | None]:
        return asdict(self)


# The listing's own fields, carried from the manifest to every result row.
LISTING_FIELDS = ("seller_id", "marketplace", "listing_url", "title", "price", "currency")
RECORD_FIELDS = tuple(field.name for field in fields(ImageRecord))
