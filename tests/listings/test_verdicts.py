import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.listings.calibration import ListingCalibration, RunScores
from knockoff.listings.verdicts import listing_verdicts
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores
from knockoff.screening.results import RESULT_SCHEMA

# Held-back photos of one product: every fake above every genuine photo but one.
POOL = HeldBackPool(genuine=[i / 100 for i in range(0, 60)] + [0.91], fakes=[0.6 + i / 250 for i in range(100)])


def write_results(path, rows, held_back: HeldBackScores) -> None:
    """A results file as `knockoff screen` writes one: rows, and the held-back scores in its metadata."""
    table = pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
    pq.write_table(table.replace_schema_metadata({"knockoff.held_back_scores": held_back.to_json()}), path)


def calibration(run_scores=()) -> ListingCalibration:
    run = RunScores()
    run.add(["shoe"], np.zeros(len(run_scores), int), np.array(run_scores, dtype=float))
    return ListingCalibration(HeldBackScores(0.95, 0.01, {"shoe": POOL}, {"nike air force": "shoe"}), run)


def photo(listing, path, status, score=None, flagged=False, **fields):
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(listing_id=listing, path=path, status=status, score=score, flagged=flagged,
               threshold=0.6 if status == "scored" else None, **fields)
    return row


def verdicts(rows, listing_calibration=None):
    table = listing_verdicts(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), listing_calibration or calibration())
    return {row["listing_id"]: row for row in table.to_pylist()}


def test_one_fake_photo_makes_a_fake_listing_and_names_it():
    by_listing = verdicts([
        photo("L1", "front.jpg", "scored", 0.10, seller_id="S1", label="genuine"),
        photo("L1", "sole.jpg", "scored", 0.92, flagged=True, product="nike air force", label="fake", seller_id="S1"),
        photo("L1", "box.jpg", "unsupported", status_reason="nearest reference 0.41", seller_id="S1"),
    ])
    listing = by_listing["L1"]
    assert (listing["photos"], listing["scored_photos"], listing["flagged_photos"]) == (3, 2, 1)
    assert listing["status"] == "scored" and listing["flagged"] and abs(listing["score"] - 0.92) < 1e-6
    assert listing["top_photo"] == "sole.jpg" and listing["product"] == "nike air force"
    assert listing["seller_id"] == "S1" and listing["fake_photos_labelled"] == 1
    # Too few judged photos in the run to estimate its share of fakes: the held-back share (100 of 161).
    assert abs(listing["prevalence"] - 100 / 161) < 1e-6 and listing["threshold"] <= 0.92
    assert 0.9 < listing["expected_precision"] < 1  # 62 held-back genuine photos vouch for no more


def test_a_run_of_rare_fakes_holds_listings_to_a_higher_threshold_than_photos():
    """915 judged photos like the held-back genuine ones and 20 fakes: at about 2% fakes a
    photo at 0.90 (flagged at photo level) no longer makes a flagged listing. No threshold
    reaches 0.95 with 61 held-back genuine photos, so listings are flagged past the highest of
    them (0.91), and their precision bound says how far short of the target that falls."""
    run = POOL.genuine * 15 + [0.99] * 20
    rows = [photo("L1", "a.jpg", "scored", 0.90, flagged=True, product="nike air force"),
            photo("L2", "b.jpg", "scored", 0.985, flagged=True, product="nike air force"),
            photo("L3", "c.jpg", "scored", 0.10, product="nike air force"),
            photo("L3", "d.jpg", "scored", 0.20, product="nike air force"),
            photo("L3", "e.jpg", "scored", 0.97, flagged=True, product="nike air force"),
            photo("L4", "f.jpg", "scored", 0.99, flagged=True, product="a product nobody calibrated")]
    by_listing = verdicts(rows, calibration(run))
    assert by_listing["L1"]["flagged_photos"] == 1 and not by_listing["L1"]["flagged"]
    assert by_listing["L2"]["flagged"] and by_listing["L2"]["expected_precision"] < 0.95
    assert by_listing["L3"]["flagged"] and by_listing["L3"]["expected_precision"] < by_listing["L2"]["expected_precision"]
    assert 0.01 < by_listing["L2"]["prevalence"] < 0.05 and by_listing["L2"]["threshold"] > 0.91
    assert by_listing["L4"]["threshold"] == math.inf and not by_listing["L4"]["flagged"]
    # Bayes' rule from the held-back share (100 of 162 fakes) to the run's: 0.985 is no longer 0.985.
    assert by_listing["L2"]["probability"] < 0.985 and by_listing["L1"]["probability"] < by_listing["L2"]["probability"]
    assert by_listing["L4"]["probability"] is None


def test_a_listing_takes_its_top_photos_brand_even_when_that_is_none():
    by_listing = verdicts([
        photo("L1", "milk.jpg", "scored", 0.01, product="milk", seller_id="S1"),
        photo("L1", "other.jpg", "no_match", product="nike air force", brand="nike", listing_url="https://shop/1", seller_id="S1"),
    ])
    assert by_listing["L1"]["brand"] is None and by_listing["L1"]["product"] == "milk"
    assert by_listing["L1"]["seller_id"] == "S1" and by_listing["L1"]["listing_url"] == "https://shop/1"


def test_an_unsupported_photo_never_clears_a_listing_and_statuses_fall_back_in_order():
    by_listing = verdicts([
        photo("L2", "box.jpg", "unsupported", status_reason="nearest reference 0.41"),
        photo("L2", "apple.jpg", "no_match", status_reason="nearest catalogued 0.30"),
        photo("L3", "kiwi.jpg", "no_match", status_reason="nearest catalogued 0.20"),
        photo("L3", "broken.jpg", "error", error="cannot decode"),
        photo("L4", "broken.jpg", "error", error="cannot decode"),
        photo(None, "alone.jpg", "scored", 0.3),
    ])
    assert by_listing["L2"]["status"] == "unsupported" and by_listing["L2"]["score"] is None
    assert not by_listing["L2"]["flagged"] and by_listing["L2"]["top_photo"] == "box.jpg"
    assert by_listing["L2"]["top_photo_reason"] == "nearest reference 0.41"
    assert by_listing["L3"]["status"] == "no_match" and by_listing["L4"]["status"] == "error"
    assert by_listing["alone.jpg"]["photos"] == 1  # no listing id: the photo is its own listing
    assert by_listing["L2"]["threshold"] is None and by_listing["L2"]["prevalence"] is None
