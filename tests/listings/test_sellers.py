import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from knockoff.cli import app
from knockoff.results import RESULT_SCHEMA
from tests.listings.test_verdicts import photo


def marketplace() -> list[dict]:
    rows = []
    # A big genuine shop: 200 judged sneaker listings, one weak false flag.
    for i in range(200):
        rows.append(photo(f"A{i}", f"a{i}.jpg", "scored", 0.65 if i == 0 else 0.05, flagged=i == 0, seller_id="big-genuine"))
    # A shop whose every listing is a likely fake.
    rows += [photo(f"B{i}", f"b{i}.jpg", "scored", 0.9, flagged=True, seller_id="all-fakes") for i in range(5)]
    # A small counterfeit shop hiding three fakes among twenty unmonitored goods.
    rows += [photo(f"C{i}", f"c{i}.jpg", "scored", 0.85, flagged=True, seller_id="hidden-fakes") for i in range(3)]
    rows += [photo(f"C{i}", f"c{i}.jpg", "no_match", seller_id="hidden-fakes") for i in range(3, 23)]
    # A seller of unmonitored goods only: nothing judged.
    rows += [photo(f"D{i}", f"d{i}.jpg", "no_match", seller_id="fruit-stall") for i in range(30)]
    return rows


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.parquet"
    pq.write_table(pa.Table.from_pylist(marketplace(), schema=RESULT_SCHEMA), path)
    return path


def test_risk_ranks_every_likely_fake_shop_above_a_big_genuine_shop_with_one_weak_flag(tmp_path, results):
    out = tmp_path / "sellers.parquet"
    outcome = CliRunner().invoke(app, ["sellers", str(results), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    sellers = pq.read_table(out).to_pylist()
    order = [s["seller_id"] for s in sellers]
    assert order.index("all-fakes") < order.index("big-genuine") and order.index("hidden-fakes") < order.index("big-genuine")
    by_id = {s["seller_id"]: s for s in sellers}
    assert by_id["hidden-fakes"]["judged_listings"] == 3 and by_id["hidden-fakes"]["listings"] == 23
    assert by_id["big-genuine"]["flagged_listings"] == 1 and by_id["big-genuine"]["risk"] < 0.1
    assert by_id["all-fakes"]["risk"] > 0.6 and by_id["all-fakes"]["risk"] > by_id["hidden-fakes"]["risk"]
    base_rate = float(pq.read_schema(out).metadata[b"knockoff.base_rate"])
    assert by_id["fruit-stall"]["judged_listings"] == 0 and by_id["fruit-stall"]["risk"] == pytest.approx(base_rate)
    assert "all-fakes: risk" in outcome.output


def test_small_partitions_give_the_same_sellers_as_one(tmp_path, results):
    from knockoff.listings import write_sellers

    whole = write_sellers(results, tmp_path / "one.parquet").sort_by("seller_id")
    spilled = write_sellers(results, tmp_path / "many.parquet", rows_per_partition=20).sort_by("seller_id")
    assert whole.equals(spilled.replace_schema_metadata(whole.schema.metadata))


def test_confirmed_fakes_come_from_the_review_store(tmp_path, results):
    import sqlite3

    from knockoff.listings import write_sellers
    from knockoff_serve.store import initialize

    store = tmp_path / "knockoff.db"
    initialize(store)
    with sqlite3.connect(store) as connection:
        connection.execute("INSERT INTO runs (id, name, path, fingerprint, rows) VALUES (1, 'r', 'r', 'f', 3)")
        for position, (listing, decision) in enumerate([("B1", "counterfeit"), ("B2", "counterfeit"), ("A3", "genuine")]):
            connection.execute("INSERT INTO items (run_id, position, listing_id, rank, decision) VALUES (1, ?, ?, 0, ?)",
                               (position, listing, decision))
    sellers = {s["seller_id"]: s for s in write_sellers(results, tmp_path / "s.parquet", store).to_pylist()}
    assert sellers["all-fakes"]["confirmed_fakes"] == 2 and sellers["big-genuine"]["confirmed_fakes"] == 0


def test_listings_command_writes_one_row_per_listing(tmp_path, results):
    out = tmp_path / "listings.parquet"
    outcome = CliRunner().invoke(app, ["listings", str(results), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert pq.read_metadata(out).num_rows == 200 + 5 + 23 + 30
    assert "258 listings, 208 judged, 9 flagged" in outcome.output
    missing = CliRunner().invoke(app, ["listings", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 1 and "not found" in missing.output


def test_risk_is_per_brand_so_genuine_groceries_do_not_hide_a_fake_sneaker(tmp_path):
    from knockoff.listings import write_sellers

    rows = [photo(f"M{i}", f"m{i}.jpg", "scored", 0.01, seller_id="milk-and-a-fake", brand="arla") for i in range(20)]
    rows.append(photo("M20", "m20.jpg", "scored", 0.86, flagged=True, seller_id="milk-and-a-fake", brand="nike"))
    rows += [photo(f"G{i}", f"g{i}.jpg", "scored", 0.8 if i < 5 else 0.1, flagged=i < 5, seller_id="noisy-genuine", brand="nike")
             for i in range(49)]
    rows += [photo(f"F{i}", f"f{i}.jpg", "scored", 0.95, flagged=True, seller_id=f"fakes-{i}", brand="nike") for i in range(6)]
    path = tmp_path / "results.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), path)
    sellers = {s["seller_id"]: s for s in write_sellers(path, tmp_path / "sellers.parquet").to_pylist()}
    assert sellers["milk-and-a-fake"]["risk_brand"] == "nike"
    assert sellers["milk-and-a-fake"]["risk"] > sellers["noisy-genuine"]["risk"]
