import pytest

from knockoff.screening.report import read_results, summarize
from knockoff.screening.results import RESULT_SCHEMA, ResultWriter


def _row(listing_id, score=None, flagged=None, error=None, claimed=None, product="bag", mismatch=None, status=None, reason=None):
    row = dict.fromkeys(RESULT_SCHEMA.names)
    row.update(status=status or ("error" if error else "scored" if score is not None else "no_match"), status_reason=reason)
    evidence = [{"row": 0, "similarity": 0.91, "path": "r.jpg", "listing_id": "R", "product": product, "authenticity": "genuine", "source": "s"}]
    row.update(listing_id=listing_id, path=f"{listing_id}.jpg", score=score, flagged=flagged, error=error,
               claimed_product=claimed, product=None if error else product, product_mismatch=mismatch,
               nearest_genuine=None if error else evidence, nearest_fake=None if error else [])
    return row


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_summary_counts_and_orders_by_score(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    writer = ResultWriter(out)
    writer.write([_row("low", 0.1, False), _row("high", 0.97, True, claimed="shoe", mismatch=True),
                  _row("mid", 0.6, True), _row("broken", error="cannot decode broken.jpg"),
                  _row("orange", flagged=False, claimed="shoe", mismatch=True),
                  _row("closeup", flagged=False, status="unsupported",
                       reason="nearest reference of bag 0.41; its product's held-back photos are >= 0.62"),
                  _row("mid", 0.2, False)])  # a second photo of listing "mid"
    writer.close()
    text = summarize(read_results(out), top=2)
    # photos and listings apart; a mismatch counts whether or not the photo was judged (orange: no_match)
    assert text.splitlines()[0] == "7 photos in 6 listings: 2 flagged, 2 not flagged, 1 failed, 2 with a product mismatch"
    assert text.splitlines()[1] == ("not judged: 1 show no catalogued product (no_match), "
                                    "1 have no reference close enough (unsupported: need references)")
    assert "closeup: nearest reference of bag 0.41" in text
    table = text.split("\n\n")[1].splitlines()
    assert table[2].startswith("high") and "shoe (!)" in table[2] and "0.910" in table[2]
    assert table[3].startswith("mid") and len(table) == 4  # top=2
    assert "broken: cannot decode broken.jpg" in text
