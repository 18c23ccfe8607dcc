import math

import numpy as np
import pyarrow as pa
import pytest

from knockoff.data.catalogue import Catalogue, CatalogueProduct
from knockoff.listings.signals import PRICE_BANDS, REUSE_KINDS, ListingContext, SignalRatios, price_band, signal_words
from knockoff.listings.verdicts import listing_verdicts
from knockoff.screening.results import RESULT_SCHEMA
from tests.listings.test_verdicts import calibration, photo

CHEAP, RETAIL = PRICE_BANDS.index("under 35%"), PRICE_BANDS.index("95-110%")
NONE = -1


def decisions(cheap_fakes: int, retail_genuine: int, cheap_genuine: int = 0) -> tuple[dict, np.ndarray]:
    """Labelled listings: fakes at under 35% of retail, genuine listings at retail (and some cheap)."""
    price = [CHEAP] * cheap_fakes + [RETAIL] * retail_genuine + [CHEAP] * cheap_genuine
    fake = [True] * cheap_fakes + [False] * (retail_genuine + cheap_genuine)
    return {"price": np.array(price), "reuse": np.full(len(price), NONE)}, np.array(fake)


def test_neutral_ratios_weigh_nothing_and_missing_signals_never_count():
    neutral = SignalRatios.neutral()
    assert not neutral.weighs("price") and not neutral.weighs("reuse")
    assert np.allclose(neutral.ratio("price", np.arange(len(PRICE_BANDS))), 1.0)
    fitted = neutral.refit(*decisions(30, 300), "test")
    assert fitted.ratio("price", np.array([NONE]))[0] == 1.0  # no price: not evidence either way
    # a band no labelled listing fell in keeps ratio 1, though fakes are ten times fewer
    assert fitted.ratio("price", np.array([PRICE_BANDS.index("over 110%")]))[0] == pytest.approx(1.0)


def test_confirmed_decisions_move_the_ratios_the_way_the_evidence_says():
    start = SignalRatios.neutral(strength=20)
    few = start.refit(*decisions(5, 5), "five of each")
    many = start.refit(*decisions(100, 100), "a hundred of each")
    cheap_few, cheap_many = (r.ratio("price", np.array([CHEAP]))[0] for r in (few, many))
    retail_few, retail_many = (r.ratio("price", np.array([RETAIL]))[0] for r in (few, many))
    assert 1 < cheap_few < cheap_many  # cheap listings were fakes: the more decisions, the stronger
    assert 1 > retail_few > retail_many  # retail-priced ones genuine: evidence for genuine
    # Genuine listings confirmed cheap (a clearance sale) pull the cheap band back towards 1.
    some, more = (start.refit(*decisions(100, 100, cheap_genuine=n), "with a clearance") for n in (20, 400))
    assert 1 < more.ratio("price", np.array([CHEAP]))[0] < some.ratio("price", np.array([CHEAP]))[0] < cheap_many
    assert many.listings == {"fake": 100, "genuine": 100} and some.listings["genuine"] == 120
    # A new export of the same decisions, fit from the prior the ratios were fit from, counts none twice.
    assert many.base() == start and many.base().refit(*decisions(100, 100), "again").ratios == many.ratios
    assert SignalRatios.from_json(many.to_json()) == many
    assert many.only(("reuse",)).weighs("price") is False and many.only(("price",)).weighs("price")


def test_a_ratios_file_with_the_wrong_bands_is_refused():
    broken = SignalRatios.neutral()
    broken.ratios["price"] = [1.0]
    with pytest.raises(ValueError, match="price needs 7 positive ratios"):
        SignalRatios.from_json(broken.to_json())
    broken.ratios["price"] = [1.0, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="price needs 7 positive ratios"):
        SignalRatios.from_json(broken.to_json())


def test_price_bands_edges():
    ratios = pa.array([0.2, 0.35, 0.64, 1.0, 1.5, None])
    assert price_band(ratios).tolist() == [0, 1, 2, 5, 6, -1]


CATALOGUE = Catalogue((CatalogueProduct("nike air force", "nike", 100.0, "USD", ("official/af1.jpg",), ("dealer",)),))


def fitted_ratios() -> SignalRatios:
    bands, fake = decisions(60, 60)
    bands["reuse"] = np.array([REUSE_KINDS.index("unauthorised seller")] * 60 + [REUSE_KINDS.index("authorised seller")] * 60)
    return SignalRatios.neutral().refit(bands, fake, "test", unjudged=np.ones(len(fake), bool))


def verdicts(rows, context):
    # a run of about one fake in ten: a photo alone needs 0.912, past every held-back genuine score
    run = calibration([0.1] * 800 + [0.95] * 100)
    table = listing_verdicts(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), run, context)
    return {row["listing_id"]: row for row in table.to_pylist()}


def test_price_and_a_reused_official_photo_move_a_listings_verdict():
    """The same photo (0.70, under the listing threshold alone in a run of one fake in ten) in two
    listings: at a fifth of retail it is flagged, at retail it is not, and the photo at 0.95
    (flagged alone) is not at retail from a dealer; an official photo shown alone by a seller
    the brand does not list, at a fifth of retail, is judged by its signals, and flagged."""
    shared = dict(product="nike air force", seller_id="shop")
    rows = [
        photo("cheap", "a.jpg", "scored", 0.70, price=20.0, currency="USD", **shared),
        photo("retail", "b.jpg", "scored", 0.70, price=100.0, currency="USD", **shared),
        photo("sure", "s.jpg", "scored", 0.95, price=100.0, currency="USD", product="nike air force", seller_id="dealer",
              reference_copy="official/af1.jpg"),
        photo("sure", "s2.jpg", "copy", product="nike air force", seller_id="dealer", reference_copy="official/af1.jpg"),
        photo("stolen", "c.jpg", "copy", product="nike air force", seller_id="shady", price=20.0, reference_copy="official/af1.jpg"),
        photo("dealer", "d.jpg", "copy", product="nike air force", seller_id="dealer", price=100.0, reference_copy="official/af1.jpg"),
        photo("kiwi", "e.jpg", "no_match", product="nike air force", seller_id="shop", price=2.0),
        photo("yoghurt", "y.jpg", "unsupported", product="nike air force", seller_id="shop", price=2.0),
        photo("titled", "t.jpg", "unsupported", product="nike air force", seller_id="shop", price=30.0, title="Air Force 1 white"),
    ]
    alone = verdicts(rows, ListingContext())
    assert not alone["cheap"]["flagged"] and not alone["retail"]["flagged"] and alone["sure"]["flagged"]
    assert alone["stolen"]["probability"] is None and alone["cheap"]["price_ratio"] is None  # no catalogue: no signals
    weighed = verdicts(rows, ListingContext(CATALOGUE, fitted_ratios()))
    cheap, retail, stolen, dealer = (weighed[k] for k in ("cheap", "retail", "stolen", "dealer"))
    assert math.isclose(cheap["price_ratio"], 0.2) and cheap["price_ratio_lr"] > 5 and cheap["official_reuse"] == "none"
    assert cheap["flagged"] and cheap["threshold"] < alone["cheap"]["threshold"] and cheap["probability"] > alone["cheap"]["probability"]
    assert not retail["flagged"] and retail["price_ratio_lr"] < 1 and retail["probability"] < alone["retail"]["probability"]
    # retail, from an authorised dealer: no threshold reaches the target at that prior, so only a
    # photo past every held-back genuine one (0.91) is flagged, as for any listing
    assert weighed["sure"]["flagged"] and weighed["sure"]["expected_precision"] < alone["sure"]["expected_precision"]
    assert weighed["sure"]["probability"] < alone["sure"]["probability"]
    assert stolen["official_photos"] == 1 and stolen["official_reuse"] == "unauthorised seller"
    assert stolen["probability"] > 0.95 and stolen["flagged"] and stolen["threshold"] is None
    assert dealer["official_reuse"] == "authorised seller" and dealer["probability"] < 0.05 and not dealer["flagged"]
    assert weighed["kiwi"]["price_ratio"] is None and weighed["kiwi"]["probability"] is None  # no_match shows no product
    # unsupported: its nearest product, too far to judge, is no product to price it against...
    assert weighed["yoghurt"]["price_ratio"] is None and weighed["yoghurt"]["probability"] is None
    assert math.isclose(weighed["titled"]["price_ratio"], 0.3)  # ...unless the listing claims it
    words = signal_words(cheap)
    assert words[0].startswith("price 20% of retail: ") and "more common among counterfeit listings" in words[0]
    assert any(line.startswith("photos: ") for line in words)


def test_a_listing_that_reuses_an_official_photo_is_recognised_end_to_end(tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    """A catalogue added to a gallery, screened: the results carry it and the ratios beside the
    gallery, and `knockoff listings` tells a stolen official photo from a dealer's."""
    import csv
    import shutil

    import pyarrow.parquet as pq

    from knockoff.data.catalogue import read_catalogue
    from knockoff.gallery.indexing import add_catalogue
    from knockoff.listings import write_listings
    from knockoff.screening.screen import screen
    from tests.helpers import SAMPLE

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    gallery = tmp_path / "models" / "gallery"
    shutil.copytree(tiny_gallery, gallery)
    (tmp_path / "models" / "listing-signals.json").write_text(fitted_ratios().to_json())
    official = tmp_path / "af1-official.jpg"
    shutil.copy(sorted((SAMPLE / "sneakers/valid/images").glob("*.jpg"))[0], official)
    (tmp_path / "catalogue.csv").write_text("product,brand,retail_price,currency,official_photos,authorised_sellers\n"
                                            f"nike air force,nike,100,USD,{official.name},dealer\n")
    add_catalogue(tiny_onnx, gallery, read_catalogue(tmp_path / "catalogue.csv"))
    manifest = tmp_path / "listings.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["listing_id", "seller_id", "price", "currency", "path"])
        writer.writerow(["stolen", "shady", "20", "USD", str(official)])
        writer.writerow(["dealer", "dealer", "100", "USD", str(official)])
    screen([str(manifest)], tmp_path / "r.parquet", tiny_onnx, gallery)
    metadata = pq.read_schema(tmp_path / "r.parquet").metadata
    assert b"knockoff.catalogue" in metadata and b"knockoff.listing_signals" in metadata
    write_listings(tmp_path / "r.parquet", tmp_path / "l.parquet")
    listings = {row["listing_id"]: row for row in pq.read_table(tmp_path / "l.parquet").to_pylist()}
    stolen, dealer = listings["stolen"], listings["dealer"]
    assert stolen["status"] == "copy" and stolen["official_photos"] == 1
    assert stolen["official_reuse"] == "unauthorised seller" and dealer["official_reuse"] == "authorised seller"
    assert math.isclose(stolen["price_ratio"], 0.2) and math.isclose(dealer["price_ratio"], 1.0)
    assert stolen["probability"] > dealer["probability"]


def test_a_combined_probability_never_reads_as_certain():
    from knockoff.wording import chance

    assert [chance(p) for p in (0.9999, 0.995, 0.43, 0.004, None)] == ["over 99%", "over 99%", "43%", "under 1%", "—"]
