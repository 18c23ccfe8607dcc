import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from knockoff.cli import app
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores
from tests.listings.test_verdicts import photo, write_results

# Held-back sneakers that a threshold of 0.5 separates; the grocery brand has genuine references only.
HELD_BACK = HeldBackScores(0.95, 0.01, {
    "shoe": HeldBackPool(genuine=[i / 200 for i in range(100)], fakes=[0.55 + i / 230 for i in range(100)]),
    "milk": HeldBackPool(genuine=[i / 100 for i in range(50)], fakes=[]),
}, {"sneaker": "shoe", "milk": "milk"})


def sneaker(listing, path, score, seller, **fields):
    return photo(listing, path, "scored", score, flagged=score >= 0.5, product="sneaker", brand="nike", seller_id=seller, **fields)


def marketplace() -> list[dict]:
    rows = []
    # A big genuine shop: 200 judged sneaker listings, one weak false flag.
    rows += [sneaker(f"A{i}", f"a{i}.jpg", 0.65 if i == 0 else 0.05, "big-genuine") for i in range(200)]
    # A shop whose every listing is a likely fake.
    rows += [sneaker(f"B{i}", f"b{i}.jpg", 0.99, "all-fakes") for i in range(5)]
    # A small counterfeit shop hiding three fakes among twenty unmonitored goods.
    rows += [sneaker(f"C{i}", f"c{i}.jpg", 0.97, "hidden-fakes") for i in range(3)]
    rows += [photo(f"C{i}", f"c{i}.jpg", "no_match", seller_id="hidden-fakes") for i in range(3, 23)]
    # A seller of unmonitored goods only: nothing judged.
    rows += [photo(f"D{i}", f"d{i}.jpg", "no_match", seller_id="fruit-stall") for i in range(30)]
    # Sneakers no reference could judge: the brand's, but no evidence either way.
    rows += [photo(f"E{i}", f"e{i}.jpg", "unsupported", product="sneaker", brand="nike", seller_id="unjudged") for i in range(2)]
    return rows


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.parquet"
    write_results(path, marketplace(), HELD_BACK)
    return path


def test_risk_ranks_every_likely_fake_shop_above_a_big_genuine_shop_with_one_weak_flag(tmp_path, results):
    out = tmp_path / "sellers.parquet"
    outcome = CliRunner().invoke(app, ["sellers", str(results), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    sellers = pq.read_table(out).to_pylist()
    order = [s["seller_id"] for s in sellers]
    assert order[:2] == ["all-fakes", "hidden-fakes"] and order[-1] == "fruit-stall"
    by_id = {s["seller_id"]: s for s in sellers}
    assert by_id["hidden-fakes"]["judged_listings"] == 3 and by_id["hidden-fakes"]["listings"] == 23
    assert by_id["big-genuine"]["risk"] < 0.01 and by_id["big-genuine"]["expected_fakes"] < 1
    assert by_id["all-fakes"]["risk"] > 0.5 and by_id["all-fakes"]["risk_brand"] == "nike"
    # 8 of 208 judged listings are fakes (9 score like one): nike's prior, which unsupported listings sit at.
    prior = json.loads(pq.read_schema(out).metadata[b"knockoff.brand_priors"])["nike"]
    assert 0.03 < prior < 0.05 and by_id["unjudged"]["risk"] == pytest.approx(prior)
    assert by_id["fruit-stall"]["judged_listings"] == 0 and by_id["fruit-stall"]["risk"] == 0.0
    assert "all-fakes: high risk: 5 of 5 judged listings flagged" in outcome.output
    assert "fruit-stall: no listing of a monitored product could be judged" in outcome.output
    assert by_id["unjudged"]["risk_level"] == "uncertain"
    for seller in by_id.values():  # the 90% interval of the count brackets the expected count, to the whole listing
        assert seller["expected_low"] <= np.ceil(seller["expected_fakes"]) and np.floor(seller["expected_fakes"]) <= seller["expected_high"]
        assert seller["expected_high"] <= seller["judged_listings"]


def test_a_seller_whose_listings_are_all_judged_and_unflagged_is_low_risk_whatever_the_prior(tmp_path):
    """Half the run's sneakers are fakes (a high prior), yet a dealer with three judged,
    unflagged listings reads low: the prior no longer lifts it to the run's share."""
    rows = [sneaker(f"F{i}", f"f{i}.jpg", 0.99, "fakes-shop") for i in range(20)]
    rows += [sneaker(f"G{i}", f"g{i}.jpg", 0.99, f"small-fake-{i}") for i in range(10)]
    rows += [sneaker(f"H{i}", f"h{i}.jpg", 0.08, "dealer") for i in range(3)]
    path = tmp_path / "results.parquet"
    write_results(path, rows, HELD_BACK)
    from knockoff.listings import write_sellers
    from knockoff.listings.sellers import summary_of

    by_id = {s["seller_id"]: s for s in write_sellers(path, tmp_path / "sellers.parquet").to_pylist()}
    prior = json.loads(pq.read_schema(tmp_path / "sellers.parquet").metadata[b"knockoff.brand_priors"])["nike"]
    dealer = by_id["dealer"]
    assert prior > 0.5 and dealer["risk_level"] == "low" and dealer["risk"] < 0.2
    assert dealer["risk"] == pytest.approx(dealer["expected_fakes"] / 3)  # no prior added: the mean q
    assert summary_of(dealer).words().startswith("low risk: 0 of 3 judged listings flagged")
    assert by_id["small-fake-0"]["risk"] > dealer["risk"]


def test_small_partitions_give_the_same_sellers_as_one(tmp_path, results):
    from knockoff.listings import write_sellers

    whole = write_sellers(results, tmp_path / "one.parquet").sort_by("seller_id")
    spilled = write_sellers(results, tmp_path / "many.parquet", rows_per_partition=20).sort_by("seller_id")
    # Sums of q over listings may add up in another order: equal to rounding.
    floats = [name for name in whole.column_names if whole.schema.field(name).type == "double"]
    assert whole.drop_columns(floats).equals(spilled.drop_columns(floats))
    for name in floats:
        values = [whole.column(name).to_numpy(zero_copy_only=False), spilled.column(name).to_numpy(zero_copy_only=False)]
        assert values[0] == pytest.approx(values[1], rel=1e-9, nan_ok=True)


def test_confirmed_fakes_come_from_the_review_store(tmp_path, results):
    import sqlite3

    from knockoff_serve.store import initialize

    from knockoff.listings import write_sellers

    store = tmp_path / "knockoff.db"
    initialize(store)
    with sqlite3.connect(store) as connection:
        connection.execute("INSERT INTO runs (id, name, path, fingerprint, rows) VALUES (1, 'r', 'r', 'f', 3)")
        for position, (listing, seller, decision) in enumerate([("B1", "all-fakes", "counterfeit"), ("B2", "all-fakes", "counterfeit"),
                                                                 ("A3", "big-genuine", "genuine"),
                                                                 ("A4", "elsewhere", "counterfeit")]):  # another seller's A4
            connection.execute("INSERT INTO items (run_id, position, listing_id, seller_id, rank, decision) VALUES (1, ?, ?, ?, 0, ?)",
                               (position, listing, seller, decision))
    sellers = {s["seller_id"]: s for s in write_sellers(results, tmp_path / "s.parquet", store).to_pylist()}
    assert sellers["all-fakes"]["confirmed_fakes"] == 2 and sellers["big-genuine"]["confirmed_fakes"] == 0


def test_listings_command_writes_one_row_per_listing_and_says_how_it_calibrated(tmp_path, results):
    out = tmp_path / "listings.parquet"
    outcome = CliRunner().invoke(app, ["listings", str(results), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert pq.read_metadata(out).num_rows == 200 + 5 + 23 + 30 + 2
    assert "260 listings, 208 judged, 9 flagged" in outcome.output
    assert "shoe: fakes 0.043 (estimated from 208 judged photos of the run)" in outcome.output  # 9 score past 0.55
    missing = CliRunner().invoke(app, ["listings", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_risk_is_per_brand_so_genuine_groceries_do_not_hide_a_fake_sneaker(tmp_path):
    from knockoff.listings import write_sellers

    rows = [photo(f"M{i}", f"m{i}.jpg", "scored", 0.01, product="milk", seller_id="milk-and-a-fake", brand="arla")
            for i in range(20)]
    rows.append(sneaker("M20", "m20.jpg", 0.86, "milk-and-a-fake"))
    rows += [sneaker(f"G{i}", f"g{i}.jpg", 0.8 if i < 5 else 0.1, "noisy-genuine") for i in range(49)]
    rows += [sneaker(f"F{i}", f"f{i}.jpg", 0.95, f"fakes-{i}") for i in range(60)]
    path = tmp_path / "results.parquet"
    write_results(path, rows, HELD_BACK)
    sellers = {s["seller_id"]: s for s in write_sellers(path, tmp_path / "sellers.parquet").to_pylist()}
    assert sellers["milk-and-a-fake"]["risk_brand"] == "nike"
    assert sellers["milk-and-a-fake"]["risk"] > sellers["noisy-genuine"]["risk"]


def test_a_listing_is_its_id_of_its_seller_on_its_marketplace(tmp_path):
    """Two sellers on two marketplaces both call a listing L1001: two listings, two sellers,
    and an analyst's decision on one never reaches the other's takedown file."""
    import sqlite3

    from knockoff.listings import write_listings, write_sellers
    from knockoff.listings.evidence import write_evidence
    from tests.helpers import review_store

    rows = [sneaker("L1001", "a.jpg", 0.99, "shop-a"), sneaker("L1001", "b.jpg", 0.02, "shop-b"),
            sneaker("L1002", "c.jpg", 0.02, "shop-a")]
    rows[0]["marketplace"], rows[1]["marketplace"], rows[2]["marketplace"] = "north", "south", "north"
    rows.append({**sneaker("L1002", "d.jpg", 0.02, "shop-a"), "marketplace": "south"})  # shop-a's id on the other marketplace
    path = tmp_path / "results.parquet"
    write_results(path, rows, HELD_BACK)
    summary = write_listings(path, tmp_path / "listings.parquet")
    listings = pq.read_table(tmp_path / "listings.parquet").to_pylist()
    assert summary.listings == 4 and summary.shared_listing_ids == 2 and "2 listing ids are used by more than one" in summary.line(path)
    assert {(r["marketplace"], r["seller_id"], r["listing_id"]) for r in listings} == {
        ("north", "shop-a", "L1001"), ("south", "shop-b", "L1001"), ("north", "shop-a", "L1002"), ("south", "shop-a", "L1002")}
    store = review_store(tmp_path / "knockoff.db", 4)
    with sqlite3.connect(store) as connection:
        connection.execute("INSERT INTO items (run_id, position, listing_id, seller_id, marketplace, path, rank, decision, "
                           "decided_by) VALUES (1, 0, 'L1001', 'shop-a', 'north', 'a.jpg', 0, 'counterfeit', 7)")
    sellers = {(s["marketplace"], s["seller_id"]): s for s in write_sellers(path, tmp_path / "s.parquet", store).to_pylist()}
    assert set(sellers) == {("north", "shop-a"), ("south", "shop-b"), ("south", "shop-a")}
    assert sellers[("north", "shop-a")]["confirmed_fakes"] == 1 and sellers[("south", "shop-b")]["confirmed_fakes"] == 0
    pack = write_evidence(path, "shop-b", tmp_path / "pack", store, pdf=False)
    assert "counterfeit" not in pack.csv.read_text()  # shop-a's decision on its own L1001 stays with shop-a
    with pytest.raises(ValueError, match="sells on 2 marketplaces"):
        write_evidence(path, "shop-a", tmp_path / "pack", store, pdf=False)
    north = write_evidence(path, "shop-a", tmp_path / "north", store, pdf=False, marketplace="north")
    assert "L1001" in north.csv.read_text() and "counterfeit" in north.csv.read_text()


@pytest.mark.parametrize("q, flagged, unsupported, level", [
    ([0.9, 0.2], 1, 0, "high"),
    ([0.02, 0.03, 0.01], 0, 0, "low"),
    ([0.6, 0.7, 0.6], 0, 0, "uncertain"),  # none flagged, yet about two expected: not "low"
    ([0.02], 0, 1, "uncertain"),
    ([], 0, 0, "none"),
])
def test_risk_in_words_with_its_interval(q, flagged, unsupported, level):
    from knockoff.listings.sellers import count_interval, risk_summary

    summary = risk_summary(q, flagged, unsupported)
    assert summary.level == level and summary.words().startswith(level if level != "none" else "no listing")
    assert summary.low <= np.ceil(summary.expected) and np.floor(summary.expected) <= summary.high <= len(q)
    # the interval against a brute-force Poisson-binomial over every outcome
    import itertools

    probabilities = {}
    for outcome in itertools.product((0, 1), repeat=len(q)):
        chance = float(np.prod([p if o else 1 - p for p, o in zip(q, outcome)]))
        probabilities[sum(outcome)] = probabilities.get(sum(outcome), 0.0) + chance
    cumulative = np.cumsum([probabilities.get(k, 0.0) for k in range(len(q) + 1)])
    assert count_interval(np.array(q), 0.9) == (int(np.searchsorted(cumulative, 0.05 - 1e-12)),
                                                int(np.searchsorted(cumulative, 0.95 - 1e-12)))
