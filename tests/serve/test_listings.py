"""Listings as the review unit: imported with their verdicts, decided in one act, sliced by facets."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from knockoff_serve.app import create_app
from knockoff_serve.runs import import_results

from tests.serve.conftest import login, result_rows, write_results

SELLERS = ("dealer", "shop-a", "shop-b", "shop-c")


def marketplace_rows() -> list[dict]:
    """12 listings of 3 photos from 4 sellers on one marketplace, with titles and prices; the
    dealer's listings are never flagged, some photos failed to screen."""
    rows = result_rows(36)
    for i, row in enumerate(rows):
        listing = i // 3
        seller = SELLERS[listing % 4]
        row.update(listing_id=f"L{listing:02d}", seller_id=seller, marketplace="shopsite", currency="EUR",
                   title=f"Sneaker {'Air Force' if listing % 2 else 'Jordan'} size {40 + listing}", price=40.0 + 10 * listing)
        row["status"] = "error" if row["error"] else "scored"
        if seller == "dealer" and row["score"] is not None:
            row.update(score=0.05, flagged=False, raw_score=-3.0)
    return rows


@pytest.fixture
def market(settings, database, users, tmp_path):
    run_id, _ = import_results(database, write_results(tmp_path / "market.parquet", marketplace_rows()))
    return create_app(settings), run_id


def test_import_makes_one_row_per_listing_and_ties_every_photo_to_it(market, database):
    listings = database.execute("SELECT * FROM listings ORDER BY listing_id").fetchall()
    assert [row["listing_id"] for row in listings] == [f"L{i:02d}" for i in range(12)]
    assert all(row["photos"] == 3 for row in listings)
    for row in listings:
        photos = database.execute("SELECT * FROM items WHERE listing_row = ?", (row["id"],)).fetchall()
        assert {p["listing_id"] for p in photos} == {row["listing_id"]} and len(photos) == 3
        assert row["pending"] == sum(p["error"] is None for p in photos)
        judged = [p["score"] for p in photos if p["status"] == "scored" and p["score"] is not None]
        assert row["score"] == pytest.approx(max(judged)) if judged else row["score"] is None
        assert row["flagged"] == (row["score"] is not None and row["threshold"] is not None and row["score"] >= row["threshold"])


def test_one_decision_decides_every_photo_of_the_listing_and_one_undo_reverses_it(market, database, users):
    app, _ = market
    client, token = login(app, "ana")
    listing = database.execute("SELECT * FROM listings WHERE pending = 3 ORDER BY rank DESC LIMIT 1").fetchone()
    answer = client.post(f"/api/listings/{listing['id']}/decision", json={"decision": "counterfeit", "claim_next": True},
                         headers={"X-CSRF-Token": token})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["decided"]) == 3 and answer.json()["next_listing_id"] not in (None, listing["id"])
    after = database.execute("SELECT pending, decision FROM listings WHERE id = ?", (listing["id"],)).fetchone()
    assert (after["pending"], after["decision"]) == (0, "counterfeit")
    entries = database.execute("SELECT batch, decision FROM decisions ORDER BY id").fetchall()
    assert len(entries) == 3 and len({e["batch"] for e in entries}) == 1 and entries[0]["batch"] is not None
    act = database.execute("SELECT * FROM batches WHERE id = ?", (entries[0]["batch"],)).fetchone()
    assert (act["kind"], act["items"], act["subject"]) == ("listing", 3, listing["listing_id"])

    undone = client.post("/api/undo", headers={"X-CSRF-Token": token}).json()
    assert undone["items"] == 3
    after = database.execute("SELECT pending, decision FROM listings WHERE id = ?", (listing["id"],)).fetchone()
    assert (after["pending"], after["decision"]) == (3, None)
    assert database.execute("SELECT COUNT(*) FROM items WHERE listing_row = ? AND decision IS NOT NULL",
                            (listing["id"],)).fetchone()[0] == 0
    log = client.get("/decisions").text  # the audit shows two acts, not six rows
    assert log.count("3 photos ·") == 2 and "listing " + listing["listing_id"] in log


def test_bulk_decision_on_the_photo_queue_is_one_act_and_undone_whole(market, database):
    app, _ = market
    client, token = login(app, "ana")
    ids = [row["id"] for row in database.execute("SELECT id FROM items WHERE error IS NULL LIMIT 10")]
    response = client.post("/queue/decide", data={"csrf_token": token, "decision": "genuine", "item": ids}, follow_redirects=False)
    assert response.status_code == 303
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision = 'genuine'").fetchone()[0] == 10
    client.post("/undo", data={"csrf_token": token})
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision IS NOT NULL").fetchone()[0] == 0


@pytest.mark.parametrize("query, keep", [
    ("seller=shop-a", lambda r: r["seller_id"] == "shop-a"),
    ("q=air+force", lambda r: "Air Force" in r["title"]),
    ("q=l03", lambda r: r["listing_id"] == "L03"),
    ("min_price=60&max_price=100", lambda r: 60 <= r["price"] <= 100),
    ("seller=shop-b&q=jordan&status=pending", lambda r: r["seller_id"] == "shop-b" and "Jordan" in r["title"] and r["pending"]),
    ("marketplace=elsewhere", lambda r: False),
])
def test_facets_and_search_combine_in_the_api_with_counts(market, database, query, keep):
    app, _ = market
    client, _ = login(app, "root")
    answer = client.get(f"/api/listings?{query}&limit=500").json()
    expected = {r["listing_id"] for r in database.execute("SELECT * FROM listings") if keep(r)}
    assert {row["listing_id"] for row in answer["listings"]} == expected
    assert answer["counts"]["total"] == len(expected)
    if "seller=" not in query:  # a facet's counts, taken under the other filters
        sellers = answer["facets"]["seller_id"]
        assert sum(sellers.values()) == len(expected)


@pytest.mark.parametrize("sort, key, reverse", [("price", "price", False), ("-price", "price", True)])
def test_sorting_by_price_pages_through_every_listing_once(market, database, sort, key, reverse):
    app, _ = market
    client, _ = login(app, "root")
    seen, after = [], None
    for _ in range(20):
        answer = client.get(f"/api/listings?sort={sort}&limit=5" + (f"&after={after}" if after else "")).json()
        seen += answer["listings"]
        after = answer["older"]
        if not after:
            break
    assert [row["listing_id"] for row in seen] == [r["listing_id"] for r in sorted(
        database.execute("SELECT * FROM listings").fetchall(), key=lambda r: (-r[key] if reverse else r[key], r["id"]))]


def test_the_listing_page_states_its_threshold_precision_and_seller_in_words(market, database):
    app, _ = market
    client, _ = login(app, "ana")
    flagged = database.execute("SELECT * FROM listings WHERE flagged = 1 ORDER BY rank DESC LIMIT 1").fetchone()
    page = client.get(f"/listings/{flagged['id']}").text
    assert f"Listing threshold <b>{flagged['threshold']:.3f}</b>" in page
    assert "of listings flagged at it are counterfeit" in page and "flagged</b>" in page
    assert re.search(r'id="seller-risk">(high|uncertain) risk: \d+ of \d+ judged listings flagged', page)
    dealer = database.execute("SELECT * FROM listings WHERE seller_id = 'dealer' AND status = 'scored' LIMIT 1").fetchone()
    page = client.get(f"/listings/{dealer['id']}").text
    assert 'id="seller-risk">low risk: 0 of' in page  # all judged, none flagged: low, whatever the prior
    progress = client.get("/listings").text
    total = database.execute("SELECT COUNT(*) FROM listings").fetchone()[0]
    assert re.search(rf"<b>{total} of {total}</b> listings left in this view", progress)


def test_decisions_export_as_csv_and_json_from_the_web_and_the_api(market, database):
    app, _ = market
    client, token = login(app, "ana")
    ids = [row["id"] for row in database.execute("SELECT id FROM items WHERE error IS NULL LIMIT 4")]
    client.post("/api/decisions/bulk", json={"item_ids": ids, "decision": "counterfeit", "note": "=cmd|' /C calc'!A0"},
                headers={"X-CSRF-Token": token})
    web = client.get("/decisions/export?format=csv")
    assert web.status_code == 200 and "attachment" in web.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(web.text)))
    assert sorted(int(r["item_id"]) for r in rows) == sorted(ids) and {r["decision"] for r in rows} == {"counterfeit"}
    assert all(r["note"].startswith("'=") for r in rows)  # a spreadsheet will not run it
    api = client.get("/api/decisions/export?format=json").json()
    assert sorted(r["item_id"] for r in api) == sorted(ids) and all(r["decided_by"] == "ana" for r in api)
    other, _ = login(app, "bo")
    assert json.loads(other.get("/decisions/export?format=json").text) == []  # analysts export their own


def test_images_are_addressed_by_version_and_a_stale_address_is_refused(market, database):
    app, _ = market
    client, _ = login(app, "ana")
    item = database.execute("SELECT * FROM items WHERE status = 'scored' LIMIT 1").fetchone()
    page = client.get(f"/items/{item['id']}").text
    address = re.search(rf'src="(/images/items/{item["id"]}/nearest_genuine/0\?v=[0-9a-f]+)"', page).group(1)
    fresh = client.get(address)
    assert fresh.status_code == 200 and "immutable" in fresh.headers["cache-control"]
    stale = client.get(address.split("?v=")[0] + "?v=0123456789abcdef")
    assert stale.status_code == 404 and "reload" in stale.text
    assert "no-cache" in client.get(address.split("?v=")[0]).headers["cache-control"]


def test_similarities_are_never_printed_as_bare_negative_cosines(market, database):
    app, _ = market
    client, _ = login(app, "ana")
    item = database.execute("SELECT * FROM items WHERE status = 'scored' LIMIT 1").fetchone()
    evidence = json.loads(item["evidence"])
    evidence["nearest_genuine"][0]["similarity"] = -0.029
    database.execute("UPDATE items SET evidence = ? WHERE id = ?", (json.dumps(evidence), item["id"]))
    page = client.get(f"/items/{item['id']}").text
    assert "-0.029" not in page and "−0.029" not in page and "unlike (0% similar)" in page
    assert f"{evidence['nearest_genuine'][1]['similarity'] * 100:.0f}% similar" in page


def test_without_a_catalogue_no_page_speaks_of_signals(market, database):
    app, _ = market
    client, _ = login(app, "ana")
    listing = database.execute("SELECT id FROM listings WHERE status = 'scored' ORDER BY rank DESC LIMIT 1").fetchone()["id"]
    for page in (client.get(f"/listings/{listing}").text, client.get("/seller?id=shop-a&marketplace=shopsite").text):
        assert "Evidence beyond the photos" not in page and "every signal weighed" not in page
