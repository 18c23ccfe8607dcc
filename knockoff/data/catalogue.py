"""The brand's catalogue: one row per product, what a listing's price and photos are measured against.

A catalogue CSV (`knockoff index add --catalogue FILE`) has the columns

- `product`, `brand`, `retail_price`, `currency` (required): the product as the gallery
  names it (matched without regard to case or spacing), its brand, and its retail price. A
  listing is priced against the product it claims (its `product` column, else the product
  its title names: every word of the name but the brand's, "Air Jordan 1 Retro" for "nike
  jordan 1"), else the product its photos show;
- `official_photos` (optional): the brand's own photos of it, paths relative to the CSV or
  http(s) URLs, `;`-separated. They join the gallery as genuine references marked `official`,
  and a listing photo that copies one is recognised as a reused brand photo;
- `authorised_sellers` (optional): `;`-separated seller ids the brand knows. A reused
  official photo means one thing from them and another from anyone else.

Prices in other currencies are converted with a rates table the user supplies (`--rates
FILE`: columns `currency`, `rate`, the value of one unit in any common unit, e.g. EUR 1.0,
USD 0.92); rates are never fetched. A catalogue is configuration, not crawl data: a row that
cannot be read rejects the file with its line, and nothing is changed.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from knockoff.images.decode import is_url

REQUIRED = ("product", "brand", "retail_price", "currency")
OPTIONAL = ("official_photos", "authorised_sellers")


def _words(text: str | None) -> list[str]:
    return re.findall(r"[a-z0-9]+", (text or "").lower())


def product_key(name: str | None) -> str:
    """How a product name is matched: case and spacing ignored."""
    return " ".join((name or "").lower().split())


@dataclass(frozen=True)
class CatalogueProduct:
    product: str
    brand: str
    retail_price: float
    currency: str
    official_photos: tuple[str, ...] = ()  # resolved paths or URLs, as the gallery stores them once added
    authorised_sellers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    products: tuple[CatalogueProduct, ...]
    rates: dict[str, float] = field(default_factory=dict)  # currency -> value of one unit in a common unit
    source: str = ""

    @cached_property
    def _by_key(self) -> dict[str, CatalogueProduct]:
        return {product_key(entry.product): entry for entry in self.products}

    @cached_property
    def _own_words(self) -> list[tuple[set[str], CatalogueProduct]]:
        """Each product's own words: its name's, less its brand's (all of its name's if none are left)."""
        return [(set(_words(e.product)) - set(_words(e.brand)) or set(_words(e.product)), e) for e in self.products]

    def find(self, product: str | None) -> CatalogueProduct | None:
        return self._by_key.get(product_key(product))

    def named_in(self, title: str | None) -> CatalogueProduct | None:
        """The product a listing's title names: the one whose own words (its name's, less its
        brand's) all appear among the title's words, the most specific if several do; None if
        none does ("Air Jordan 1 Retro High" names "nike jordan 1", "Jordan 11" does not)."""
        words = set(_words(title))
        if not words:
            return None
        named = [(len(own), entry) for own, entry in self._own_words if own <= words]
        named.sort(key=lambda pair: -pair[0])
        return named[0][1] if named and (len(named) == 1 or named[0][0] > named[1][0]) else None

    def convert(self, price: float, currency: str | None, to: str) -> float | None:
        """`price` in `currency` (None: the catalogue's own) expressed in `to`; None without a rate."""
        have, want = (currency or to).strip().upper(), to.strip().upper()
        if have == want:
            return price
        if have not in self.rates or want not in self.rates:
            return None
        return price * self.rates[have] / self.rates[want]

    def price_ratio(self, product: str | None, price: float | None, currency: str | None) -> float | None:
        """The listing price over the product's retail price, in the catalogue's currency; None
        when the product is not catalogued, there is no usable price, or no rate converts it."""
        entry = self.find(product)
        if entry is None or price is None or not math.isfinite(price) or price <= 0:
            return None
        converted = self.convert(float(price), currency, entry.currency)
        return None if converted is None else converted / entry.retail_price

    def authorised(self, product: str | None, seller_id: str | None) -> bool | None:
        """Whether the brand lists this seller for the product; None when it lists nobody."""
        entry = self.find(product)
        if entry is None or not entry.authorised_sellers:
            return None
        return (seller_id or "") in entry.authorised_sellers

    def official_photos(self) -> dict[str, str]:
        """Every official photo (as the gallery stores its path) -> its product."""
        return {photo: entry.product for entry in self.products for photo in entry.official_photos}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Catalogue:
        products = tuple(CatalogueProduct(**{**p, "official_photos": tuple(p.get("official_photos", ())),
                                             "authorised_sellers": tuple(p.get("authorised_sellers", ()))})
                         for p in values["products"])
        return cls(products, dict(values.get("rates") or {}), values.get("source", ""))


def read_catalogue(path: Path, rates: Path | None = None) -> Catalogue:
    """The catalogue CSV at `path` (official photo paths resolved against its folder), with
    the rates table at `rates` if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise ValueError(f"catalogue {path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                             f"(needs {', '.join(REQUIRED)}; optional {', '.join(OPTIONAL)})")
        products = [_product(path, line, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                    for line, row in enumerate(reader, start=2)]
    if not products:
        raise ValueError(f"catalogue {path}: no products")
    seen: dict[str, int] = {}
    for number, entry in enumerate(products):
        if product_key(entry.product) in seen:
            raise ValueError(f"catalogue {path}: product {entry.product!r} is listed twice")
        seen[product_key(entry.product)] = number
    catalogue = Catalogue(tuple(products), read_rates(rates) if rates else {}, str(path))
    unconvertible = sorted({p.currency for p in products} - set(catalogue.rates)) if catalogue.rates else []
    if unconvertible:
        raise ValueError(f"rates {rates}: no rate for the catalogue's {', '.join(unconvertible)}")
    return catalogue


def _product(path: Path, line: int, row: dict[str, str]) -> CatalogueProduct:
    where = f"catalogue {path}, line {line}"
    for column in REQUIRED:
        if not row.get(column):
            raise ValueError(f"{where}: {column} is empty")
    try:
        price = float(row["retail_price"])
    except ValueError:
        raise ValueError(f"{where}: retail_price {row['retail_price']!r} is not a number") from None
    if not math.isfinite(price) or price <= 0:
        raise ValueError(f"{where}: retail_price must be a positive number, not {row['retail_price']!r}")
    photos = tuple(p if is_url(p) else str((path.parent / p).resolve())
                   for p in (part.strip() for part in row.get("official_photos", "").split(";")) if p)
    sellers = tuple(s for s in (part.strip() for part in row.get("authorised_sellers", "").split(";")) if s)
    return CatalogueProduct(row["product"], row["brand"], price, row["currency"].upper(), photos, sellers)


def read_rates(path: Path) -> dict[str, float]:
    """currency -> value of one unit, from a CSV with columns `currency` and `rate`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rates {path} not found")
    rates: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not {"currency", "rate"} <= {c.strip() for c in reader.fieldnames or []}:
            raise ValueError(f"rates {path}: needs the columns currency and rate")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                rate = float(row["rate"])
            except ValueError:
                raise ValueError(f"rates {path}, line {line}: rate {row['rate']!r} is not a number") from None
            if not row["currency"] or not math.isfinite(rate) or rate <= 0:
                raise ValueError(f"rates {path}, line {line}: needs a currency and a positive rate")
            rates[row["currency"].upper()] = rate
    return rates
