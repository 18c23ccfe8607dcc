import pyarrow as pa

from knockoff.listings.verdicts import listing_verdicts
from knockoff.results import RESULT_SCHEMA


def photo(listing, path, status, score=None, flagged=False, **fields):
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(listing_id=listing, path=path, status=status, score=score, flagged=flagged,
               threshold=0.6 if status == "scored" else None, **fields)
    return row


def verdicts(rows):
    table = listing_verdicts(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA))
    return {row["listing_id"]: row for row in table.to_pylist()}


def test_one_fake_photo_makes_a_fake_listing_and_names_it():
    by_listing = verdicts([
        photo("L1", "front.jpg", "scored", 0.10, seller_id="S1", label="genuine"),
        photo("L1", "sole.jpg", "scored", 0.92, flagged=True, product="nike air force", label="fake"),
        photo("L1", "box.jpg", "unsupported", status_reason="nearest reference 0.41"),
    ])
    listing = by_listing["L1"]
    assert (listing["photos"], listing["scored_photos"], listing["flagged_photos"]) == (3, 2, 1)
    assert listing["status"] == "scored" and listing["flagged"] and abs(listing["score"] - 0.92) < 1e-6
    assert listing["top_photo"] == "sole.jpg" and listing["product"] == "nike air force"
    assert listing["seller_id"] == "S1" and abs(listing["threshold"] - 0.6) < 1e-6 and listing["fake_photos_labelled"] == 1


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
