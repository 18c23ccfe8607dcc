"""The sellers pages: ranked by risk, a seller's listings with bulk decisions, and the item
page's seller, sibling photos and reuse line."""

import re

import pytest
from knockoff_serve.runs import import_results

from tests.serve.conftest import PHOTOS, login, result_rows, write_results


def marketplace_rows() -> list[dict]:
    rows = result_rows(24)
    for i, row in enumerate(rows):
        row["error"] = None
        shop = "fake-shop" if i < 6 else "big-shop"
        score = 0.95 if shop == "fake-shop" else (0.7 if i == 6 else 0.05)
        row.update(seller_id=shop, listing_id=f"{shop}-{i // 2}", status="scored", score=score, flagged=score >= 0.5,
                   title=f"AF1 #{i // 2}", listing_url="javascript:alert(1)" if i == 0 else f"https://shop.example/{i // 2}",
                   path=str(PHOTOS[i % 12]))
    return rows


@pytest.fixture
def sellers_app(app, database, tmp_path):
    import_results(database, write_results(tmp_path / "market.parquet", marketplace_rows()))
    return app


def test_sellers_are_ranked_by_risk_and_link_to_their_listings(sellers_app):
    ana, _ = login(sellers_app, "ana")
    page = ana.get("/sellers").text
    order = re.findall(r'href="/sellers/([^"?]+)\?run=\d+"', page)
    assert order[:2] == ["fake-shop", "big-shop"]
    shop = ana.get("/sellers/fake-shop").text
    assert shop.count('class="listing"') == 3 and "javascript:" not in shop
    assert 'href="https://shop.example/1"' in shop
    assert ana.get("/sellers/nobody").status_code == 404


def test_bulk_decisions_on_a_sellers_listings_come_back_to_the_seller(sellers_app, database):
    ana, csrf = login(sellers_app, "ana")
    shop = ana.get("/sellers/fake-shop").text
    items = re.findall(r'name="item" value="(\d+)"', shop)
    assert len(items) == 6
    moved = ana.post("/queue/decide", data={"csrf_token": csrf, "decision": "counterfeit", "item": items,
                                            "back": "/sellers/fake-shop"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"].startswith("/sellers/fake-shop?message=6%20decided")
    decided = database.execute("SELECT COUNT(*) FROM items WHERE seller_id = 'fake-shop' AND decision = 'counterfeit'").fetchone()[0]
    assert decided == 6
    assert "<td>3</td>" in ana.get("/sellers").text  # three confirmed counterfeit listings
    elsewhere = ana.post("/queue/decide", data={"csrf_token": csrf, "decision": "genuine", "item": [], "back": "https://evil.example/"},
                         follow_redirects=False)
    assert elsewhere.headers["location"].startswith("/queue?")  # never an open redirect


def test_the_item_page_shows_the_seller_the_listings_other_photos_and_where_the_photo_recurs(sellers_app, database):
    ana, _ = login(sellers_app, "ana")
    item = database.execute("SELECT id FROM items WHERE listing_id = 'big-shop-3' ORDER BY position LIMIT 1").fetchone()[0]
    page = ana.get(f"/items/{item}").text
    assert 'id="seller">big-shop</a>' in page
    assert len(re.findall(r'id="listing-photos".*?</div>', page, re.S)[0].split("<img")) == 2  # one sibling photo
    # the same photo file is in the conftest run's listings and in another listing of this run
    assert re.search(r"this photo also appears in \d+ listings? of \d+ sellers?", page)


def test_admins_download_a_sellers_evidence_pack_and_analysts_may_not(sellers_app, database):
    run = database.execute("SELECT run_id FROM sellers WHERE seller_id = 'fake-shop'").fetchone()[0]
    root, _ = login(sellers_app, "root")
    assert 'id="evidence-' in root.get("/sellers/fake-shop").text
    pack = root.get(f"/sellers/fake-shop/evidence?run={run}")
    assert pack.status_code == 200 and "attachment" in pack.headers["content-disposition"]
    assert "Evidence pack: seller fake-shop" in pack.text and "data:image/jpeg;base64," in pack.text
    assert root.get(f"/sellers/nobody/evidence?run={run}").status_code == 404
    assert root.get("/sellers/fake-shop/evidence?run=abc").status_code == 422
    ana, _ = login(sellers_app, "ana")
    assert ana.get(f"/sellers/fake-shop/evidence?run={run}").status_code == 403


def test_a_copy_found_by_screening_counts_as_reuse_and_a_stolen_reference_is_named(app, database, tmp_path):
    rows = marketplace_rows()
    for i, row in enumerate(rows):
        row["path"] = str(tmp_path / f"photo-{i}.jpg")  # no file path recurs: only the copy finding links them
    rows[2]["duplicate_group"] = rows[20]["duplicate_group"] = 2  # fake-shop-1 and big-shop-10 show one photograph
    rows[4]["reference_copy"] = "sneakers/train/images/0056.jpg"
    import_results(database, write_results(tmp_path / "copies.parquet", rows))
    ana, _ = login(app, "ana")
    item = lambda listing: database.execute("SELECT id FROM items WHERE listing_id = ? ORDER BY position LIMIT 1",  # noqa: E731
                                            (listing,)).fetchone()[0]
    assert "this photo also appears in 1 listing of 1 seller" in ana.get(f"/items/{item('fake-shop-1')}").text
    stolen = ana.get(f"/items/{item('fake-shop-2')}").text
    assert 'id="reference-copy"' in stolen and "sneakers/train/images/0056.jpg" in stolen
    assert 'id="reuse"' not in ana.get(f"/items/{item('fake-shop-0')}").text


def test_results_from_before_listing_calibration_import_their_photos_but_rank_no_sellers(database, tmp_path):
    run_id, new = import_results(database, write_results(tmp_path / "old.parquet", marketplace_rows(), held_back=None))
    assert new
    assert database.execute("SELECT COUNT(*) FROM items WHERE run_id = ?", (run_id,)).fetchone()[0] == 24
    assert database.execute("SELECT COUNT(*) FROM sellers WHERE run_id = ?", (run_id,)).fetchone()[0] == 0
