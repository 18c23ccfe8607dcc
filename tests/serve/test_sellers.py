"""The sellers pages: ranked by risk, a seller's listings with bulk decisions, and the item
page's seller, sibling photos and reuse line."""

import os
import re
import shutil

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
    order = re.findall(r'href="/seller\?id=([^"&]+)&amp;marketplace=[^"&]*&amp;run=\d+"', page)
    assert order[:2] == ["fake-shop", "big-shop"]
    shop = ana.get("/seller?id=fake-shop").text
    assert shop.count('class="listing"') == 3 and "javascript:" not in shop
    assert 'href="https://shop.example/1"' in shop
    assert ana.get("/seller?id=nobody").status_code == 404


def test_bulk_decisions_on_a_sellers_listings_come_back_to_the_seller(sellers_app, database):
    ana, csrf = login(sellers_app, "ana")
    shop = ana.get("/seller?id=fake-shop").text
    items = re.findall(r'name="item" value="(\d+)"', shop)
    assert len(items) == 6
    moved = ana.post("/queue/decide", data={"csrf_token": csrf, "decision": "counterfeit", "item": items,
                                            "back": "/seller?id=fake-shop"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"].startswith("/seller?id=fake-shop&message=6%20decided")
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
    assert 'id="evidence-' in root.get("/seller?id=fake-shop").text
    pack = root.get(f"/seller/evidence?id=fake-shop&run={run}")
    assert pack.status_code == 200 and "attachment" in pack.headers["content-disposition"]
    assert "Evidence pack: seller fake-shop" in pack.text and "data:image/jpeg;base64," in pack.text
    assert root.get(f"/seller/evidence?id=nobody&run={run}").status_code == 404
    assert root.get("/seller/evidence?id=fake-shop&run=abc").status_code == 422
    takedown = root.get(f"/seller/evidence?id=fake-shop&run={run}&format=csv")
    assert takedown.status_code == 200 and takedown.headers["content-type"].startswith("text/csv")
    assert takedown.text.startswith("listing_id,listing_url") and "fake-shop-" in takedown.text
    assert "takedown.csv" in takedown.headers["content-disposition"]
    if shutil.which("chromium") or os.path.exists("/usr/bin/chromium"):  # .ci/run installs it
        printed = root.get(f"/seller/evidence?id=fake-shop&run={run}&format=pdf")
        assert printed.status_code == 200 and printed.content.startswith(b"%PDF") and printed.headers["content-type"] == "application/pdf"
    assert root.get(f"/seller/evidence?id=fake-shop&run={run}&format=docx").status_code == 422
    ana, _ = login(sellers_app, "ana")
    for kind in ("html", "csv", "pdf"):
        assert ana.get(f"/seller/evidence?id=fake-shop&run={run}&format={kind}").status_code == 403


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


@pytest.mark.parametrize("seller", ["shop/with/slash", "x/evidence", "..", "50%/off", "tienda ñandú", "a&b=c#d"])
def test_a_seller_id_of_any_characters_reaches_its_page_from_the_links(app, database, tmp_path, seller):
    import html
    from urllib.parse import unquote

    rows = marketplace_rows()
    for row in rows[:6]:
        row["seller_id"] = seller
    import_results(database, write_results(tmp_path / "odd.parquet", rows))
    root, _ = login(app, "root")
    links = [html.unescape(href) for href in re.findall(r'href="(/seller\?id=[^"]+)"', root.get("/sellers").text)]
    mine = next(link for link in links if unquote(link.split("id=")[1].split("&")[0]) == seller)
    page = root.get(mine)
    assert page.status_code == 200 and page.text.count('class="listing"') == 3
    evidence = html.unescape(re.search(r'href="(/seller/evidence\?[^"]+)"', page.text).group(1))
    assert root.get(evidence).status_code == 200


def test_the_same_seller_id_on_two_marketplaces_and_a_shared_listing_id_stay_apart(app, database, tmp_path):
    rows = marketplace_rows()[:8]
    for i, row in enumerate(rows):  # shop-x on two marketplaces; both use listing ids L1, L2
        row.update(seller_id="shop-x", marketplace="north" if i < 4 else "south", listing_id=f"L{i % 4 // 2 + 1}")
    import_results(database, write_results(tmp_path / "two.parquet", rows))
    root, _ = login(app, "root")
    page = root.get("/sellers").text
    assert 'shop-x</a> <span class="muted">on north' in page and 'shop-x</a> <span class="muted">on south' in page
    north = root.get("/seller?id=shop-x&marketplace=north").text
    assert north.count('class="listing"') == 2 and north.count("photo") >= 4
    item = database.execute("SELECT id FROM items WHERE marketplace = 'north' AND listing_id = 'L1' ORDER BY id LIMIT 1").fetchone()[0]
    item_page = root.get(f"/items/{item}").text
    siblings = re.search(r'id="listing-photos"(.*?)</div>', item_page, re.S).group(1)
    assert siblings.count("<a ") == 1  # the other north L1 photo, not south's L1 photos


def test_a_store_whose_sellers_were_keyed_by_id_alone_is_migrated(tmp_path):
    import sqlite3

    from knockoff_serve.store import initialize

    path = tmp_path / "old.db"
    initialize(path)
    with sqlite3.connect(path) as old:  # the sellers table as an earlier Knockoff made it
        old.executescript("""INSERT INTO runs (id, name, path, fingerprint, rows) VALUES (1, 'r', 'r', 'f', 3);
            DROP TABLE sellers;
            CREATE TABLE sellers (run_id INTEGER NOT NULL, seller_id TEXT NOT NULL, risk REAL NOT NULL, risk_brand TEXT,
                listings INTEGER NOT NULL, judged_listings INTEGER NOT NULL, flagged_listings INTEGER NOT NULL,
                expected_fakes REAL NOT NULL, top_listing TEXT, unsupported_listings INTEGER NOT NULL,
                PRIMARY KEY (run_id, seller_id));
            INSERT INTO sellers VALUES (1, 'shop', 0.5, 'nike', 3, 2, 1, 1.0, 'L1', 0);""")
    initialize(path)
    with sqlite3.connect(path) as migrated:
        assert migrated.execute("SELECT marketplace, seller_id, risk FROM sellers").fetchall() == [("", "shop", 0.5)]
        migrated.execute("INSERT INTO sellers (run_id, marketplace, seller_id, risk, listings, judged_listings, flagged_listings, "
                         "expected_fakes, unsupported_listings) VALUES (1, 'south', 'shop', 0.1, 1, 1, 0, 0.1, 0)")
