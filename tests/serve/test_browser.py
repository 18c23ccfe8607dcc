"""The review flow in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from knockoff_serve.server import BackgroundServer  # noqa: E402

from tests.serve.conftest import PASSWORD  # noqa: E402

CHROMIUM = os.environ.get("KNOCKOFF_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Quiet, offline-safe Chromium (no background network calls on a closed network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def server(app):
    with BackgroundServer(app) as url:
        yield url


def log_in(page, url: str, name: str = "ana") -> None:
    page.goto(f"{url}/queue")
    assert "/login" in page.url
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/queue")


def test_log_in_decide_three_with_the_keyboard_undo_one(browser, server, database, users):
    page = browser.new_page()
    log_in(page, server)
    assert page.locator("#counts").inner_text().count("pending")
    page.click("#start")
    page.wait_for_url("**/items/*")
    visited = []
    for key in ("f", "g", "u"):
        visited.append(int(page.url.split("/items/")[1].split("?")[0]))
        page.wait_for_selector("#listing-photo")
        with page.expect_navigation():
            page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("z")
    assert int(page.url.split("/items/")[1].split("?")[0]) == visited[2]  # back on the undone one

    decisions = database.execute("SELECT item_id, action, decision, user_id FROM decisions ORDER BY id").fetchall()
    assert [(r["item_id"], r["action"], r["decision"]) for r in decisions] == [
        (visited[0], "decide", "counterfeit"), (visited[1], "decide", "genuine"), (visited[2], "decide", "unsure"),
        (visited[2], "undo", None)]
    assert {r["user_id"] for r in decisions} == {users["ana"]}
    state = {r["id"]: r["decision"] for r in database.execute("SELECT id, decision FROM items WHERE id IN (?, ?, ?)", visited)}
    assert state == {visited[0]: "counterfeit", visited[1]: "genuine", visited[2]: None}


def test_the_item_page_takes_its_lease_by_post_and_a_second_analyst_sees_who_holds_it(browser, server, database, users):
    ana = browser.new_context().new_page()
    log_in(ana, server, "ana")
    item = database.execute("SELECT id FROM items WHERE decision IS NULL AND error IS NULL ORDER BY id LIMIT 1").fetchone()[0]
    ana.goto(f"{server}/items/{item}")  # a plain GET: the page's script leases it
    ana.wait_for_function("() => !document.getElementById('lease') || document.readyState === 'complete'")
    for _ in range(50):
        if database.execute("SELECT user_id FROM leases WHERE item_id = ?", (item,)).fetchone():
            break
        ana.wait_for_timeout(100)
    assert [tuple(r) for r in database.execute("SELECT item_id, user_id FROM leases")] == [(item, users["ana"])]
    bo = browser.new_context().new_page()
    log_in(bo, server, "bo")
    bo.goto(f"{server}/items/{item}")
    assert bo.locator("#lease").is_visible() and "ana is reviewing" in bo.locator("#lease").inner_text()
    bo.keyboard.press("g")  # keys are off: nothing is decided
    bo.wait_for_timeout(300)
    assert database.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0


def test_select_ticks_only_flagged_pending_photos_a_confirmation_names_the_count_and_undo_reverses_all(
        browser, server, database, users):
    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server}/queue?status=pending")
    boxes = page.locator('input[name="item"]')
    assert boxes.count() > 1 and not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.check("#select-all")
    ticked = [boxes.nth(i).get_attribute("value") for i in range(boxes.count()) if boxes.nth(i).is_checked()]
    flagged = {str(r["id"]) for r in database.execute(
        "SELECT id FROM items WHERE flagged = 1 AND status = 'scored' AND decision IS NULL")}
    assert ticked and set(ticked) <= flagged and len(ticked) < boxes.count()  # never the unflagged or unjudged ones
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("#bulk button.unsure")
    assert f"Mark {len(ticked)} photos as unsure?" in messages[0]
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision = 'unsure'").fetchone()[0] == len(ticked)
    with page.expect_navigation():
        page.click("#undo")
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision IS NOT NULL").fetchone()[0] == 0
    assert f"Undone: {len(ticked)} decisions of one act" in page.inner_text("#message")


def test_a_dismissed_confirmation_decides_nothing(browser, server, database, users):
    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server}/queue?status=pending")
    page.check("#select-all")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#bulk button.counterfeit")
    page.wait_for_timeout(300)
    assert database.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0


def test_anonymous_requests_are_refused(browser, server):
    page = browser.new_page()
    response = page.goto(f"{server}/api/items")
    assert response.status == 401
    page.goto(f"{server}/items/1")
    assert "/login" in page.url and page.locator("#password").is_visible()


def test_dot_dot_paths_are_refused(browser, server, database):
    page = browser.new_page()
    log_in(page, server, "root")
    item = database.execute("SELECT id FROM items WHERE error IS NULL ORDER BY id LIMIT 1").fetchone()[0]
    database.execute("UPDATE items SET path = '../../../../../etc/passwd' WHERE id = ?", (item,))
    response = page.request.get(f"{server}/images/items/{item}")
    assert response.status == 403 and b"root:" not in response.body()
    for raw in ("/images/..%2F..%2F..%2Fetc%2Fpasswd", "/images/items/%2e%2e/%2e%2e/etc/passwd"):
        response = page.request.get(f"{server}{raw}")
        assert response.status in (403, 404, 422) and b"root:" not in response.body()


@pytest.fixture
def unsupported_server(unsupported_app):
    with BackgroundServer(unsupported_app) as url:
        yield url


def test_needs_references_queue_and_the_r_key_add_the_photo_and_rescore_it(browser, unsupported_server, database, settings):
    """An admin's r applies at once (an analyst's is a proposal: tests/serve/test_references.py)."""
    from knockoff.gallery.store import Gallery

    page = browser.new_page()
    log_in(page, unsupported_server, "root")
    page.click("#needs-references")
    page.wait_for_url("**screening=unsupported**")
    page.click("text=L00000")
    page.wait_for_selector("#status-reason")
    assert "held-back photos are >= 0.62" in page.locator("#status-reason").inner_text()
    before = Gallery.load(settings.home / "gallery").info.count  # the service's working copy
    with page.expect_navigation():
        page.keyboard.press("r")
    assert "rescored" in page.locator("#message").inner_text()
    after = Gallery.load(settings.home / "gallery").info
    assert after.count == before + 1
    # rescored against the new version, the photo itself left out of its own evidence
    assert database.execute("SELECT index_version FROM items WHERE listing_id = 'L00000'").fetchone()[0] == after.version


def test_local_evidence_overlay_and_the_side_by_side_view_move_together(browser, server, database, users, tmp_path):
    """The item page draws the regions on the photo (o hides and shows them); a region's key or
    click takes both photos to it, zoomed, the reference switched to the region's own; the wheel
    zooms both together."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server)
    item = database.execute("SELECT id FROM items WHERE score IS NOT NULL ORDER BY id LIMIT 1").fetchone()["id"]
    page.goto(f"{server}/items/{item}")
    page.wait_for_selector("#local-evidence")
    boxes = page.locator("#pane-photo .rbox")
    assert boxes.count() == 2 and boxes.first.is_visible()
    assert "fake" in boxes.first.get_attribute("class")
    page.keyboard.press("o")
    assert not boxes.first.is_visible()
    page.keyboard.press("o")
    assert boxes.first.is_visible()

    def transforms() -> list[str]:
        return page.eval_on_selector_all("#local-evidence .stage", "stages => stages.map(s => s.style.transform)")

    assert transforms() == ["", ""]  # whole photos to begin with
    page.keyboard.press("2")
    page.wait_for_function("document.getElementById('reference-image').src.includes('/regions/1?')")
    photo, reference = transforms()
    assert "scale(3)" in photo and "scale(3)" in reference and photo != reference  # each centred on its own region
    assert "genuine reference" in page.locator("#reference-caption").inner_text()
    page.keyboard.press("0")  # whole photos again: region 1's box in view, to click
    page.locator("#pane-photo .rbox").first.click()
    page.wait_for_function("document.getElementById('reference-image').src.includes('/regions/0?')")
    assert "known fake" in page.locator("#reference-caption").inner_text()
    page.locator("#pane-reference").hover()
    page.mouse.wheel(0, -100)
    photo, reference = transforms()
    assert "scale(3.75)" in photo and "scale(3.75)" in reference  # zoomed together, from either side
    page.locator("#region-list button").nth(1).click()
    page.wait_for_function("document.getElementById('reference-image').src.includes('/regions/1?')")
    page.keyboard.press("0")
    assert transforms() == ["", ""]
    image = page.request.get(f"{server}/images/items/{item}/regions/1?full=1")
    assert image.ok and image.headers["content-type"] == "image/jpeg"
    assert page.request.get(f"{server}/images/items/{item}/regions/7").status == 404
    page.screenshot(path=str(tmp_path / "local-evidence.png"))


def test_no_page_is_wider_than_a_phone(browser, server, database, users):
    """At a 390 px viewport every page fits: the header wraps, columns stack, wide tables
    scroll inside themselves (the item page was 1,193 px wide)."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    log_in(page, server)
    item = database.execute("SELECT id FROM items WHERE score IS NOT NULL ORDER BY id LIMIT 1").fetchone()["id"]
    for path in ("/queue", f"/items/{item}", "/sellers", "/gallery", "/decisions"):
        page.goto(server + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)


@pytest.fixture
def market_server(settings, database, users, tmp_path):
    """The review service on a marketplace of 12 listings of 3 photos from 4 sellers."""
    from knockoff_serve.app import create_app
    from knockoff_serve.runs import import_results

    from tests.serve.conftest import write_results
    from tests.serve.test_listings import marketplace_rows

    import_results(database, write_results(tmp_path / "market.parquet", marketplace_rows()))
    with BackgroundServer(create_app(settings)) as url:
        yield url


def listing_shown(page) -> int:
    return int(page.url.split("/listings/")[1].split("?")[0])


def test_the_listing_queue_filters_by_seller_in_the_url_and_one_key_decides_a_listing(browser, market_server, database,
                                                                                      users, tmp_path):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    log_in(page, market_server)
    page.goto(f"{market_server}/listings")
    total = database.execute("SELECT COUNT(*) FROM listings").fetchone()[0]
    assert f"{total} of {total} listings left in this view" in page.inner_text("#progress")
    page.select_option("#facet-seller", "shop-a")
    page.fill("input[name=q]", "air force")
    with page.expect_navigation():
        page.click("form.filters button[type=submit]")
    assert "seller=shop-a" in page.url and "q=air+force" in page.url  # the view is in its address
    wanted = {r["listing_id"] for r in database.execute(
        "SELECT listing_id FROM listings WHERE seller_id = 'shop-a' AND title LIKE '%Air Force%'")}
    shown = set(page.locator("#listings tbody tr td:nth-child(3) a").all_inner_texts())
    assert shown == wanted and wanted
    page.screenshot(path=str(tmp_path / "listings.png"))
    page.goto(f"{market_server}/listings")
    with page.expect_navigation():
        page.keyboard.press("s")  # start reviewing: the first pending listing
    first = listing_shown(page)
    page.wait_for_function("() => document.readyState === 'complete'")
    assert "Listing threshold" in page.inner_text("#why")
    with page.expect_navigation():
        page.keyboard.press("f")
    assert listing_shown(page) != first
    photos = database.execute("SELECT decision FROM items WHERE listing_row = ? AND error IS NULL", (first,)).fetchall()
    assert photos and {p["decision"] for p in photos} == {"counterfeit"}  # every photo of it, one key
    page.keyboard.press("?")
    assert page.locator("#key-help").is_visible() and "every photo of the listing" in page.inner_text("#key-help")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("z")  # one undo: the whole listing
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision IS NOT NULL").fetchone()[0] == 0


def test_bulk_listing_decision_is_confirmed_by_count_and_undone_whole(browser, market_server, database, users):
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    log_in(page, market_server)
    page.goto(f"{market_server}/listings")
    page.check("#select-all")
    ticked = page.locator('input[name="listing"]:checked').count()
    flagged = database.execute("SELECT COUNT(*) FROM listings WHERE flagged = 1 AND status = 'scored' AND pending > 0").fetchone()[0]
    assert ticked == flagged > 0 and page.locator('input[name="listing"]').count() > ticked
    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    with page.expect_navigation():
        page.click("#bulk button.counterfeit")
    assert messages and f"Mark {ticked} listings as counterfeit?" in messages[0]
    decided = database.execute("SELECT COUNT(*) FROM items WHERE decision = 'counterfeit'").fetchone()[0]
    assert decided == database.execute("SELECT COUNT(*) FROM items i JOIN listings l ON l.id = i.listing_row "
                                       "WHERE l.flagged = 1 AND i.error IS NULL").fetchone()[0]
    assert database.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 1  # one act in the audit
    with page.expect_navigation():
        page.click("#undo")
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision IS NOT NULL").fetchone()[0] == 0


def test_decisions_export_downloads_from_the_decision_log(browser, market_server, database, users, tmp_path):
    page = browser.new_page()
    log_in(page, market_server)
    listing = database.execute("SELECT id FROM listings WHERE pending > 0 ORDER BY id LIMIT 1").fetchone()["id"]
    page.goto(f"{market_server}/listings/{listing}")
    page.wait_for_function("() => document.readyState === 'complete'")
    with page.expect_navigation():
        page.keyboard.press("g")
    page.goto(f"{market_server}/decisions")
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / "decisions.csv"
    download.value.save_as(saved)
    lines = saved.read_text().splitlines()
    photos = database.execute("SELECT COUNT(*) FROM items WHERE listing_row = ? AND error IS NULL", (listing,)).fetchone()[0]
    assert lines[0].startswith("item_id,run,listing_id,seller_id") and len(lines) == 1 + photos


AXE_PAGES = ("/login", "/listings", "/listings/{listing}", "/queue", "/items/{item}", "/seller?id=shop-a&marketplace=shopsite&run=1",
             "/sellers", "/decisions")


def test_every_review_page_passes_the_accessibility_checker_without_serious_violations(browser, market_server, database,
                                                                                        users):
    """axe-core (the checker browsers' dev tools use) in real Chromium: no serious or critical
    violation (unlabelled controls, images without alt text, missing headings, contrast)."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    listing = database.execute("SELECT id, top_item FROM listings WHERE status = 'scored' ORDER BY rank DESC LIMIT 1").fetchone()
    found = {}
    for path in AXE_PAGES:
        if path == "/listings":
            log_in(page, market_server)
        page.goto(market_server + path.format(listing=listing["id"], item=listing["top_item"]))
        page.wait_for_load_state("networkidle")
        violations = axe.run(page).response["violations"]
        found[path] = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in violations if v["impact"] in ("serious", "critical")]
    assert not any(found.values()), found


def test_listing_pages_fit_a_phone(browser, market_server, database, users):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    log_in(page, market_server)
    listing = database.execute("SELECT id FROM listings ORDER BY rank DESC LIMIT 1").fetchone()["id"]
    for path in ("/listings", f"/listings/{listing}", "/seller?id=shop-a&marketplace=shopsite&run=1", "/decisions"):
        page.goto(market_server + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)


def test_signals_in_words_pass_the_accessibility_checker_and_fit_a_phone(browser, priced, database, users):
    """The listing and seller pages with a catalogue's signals, in real Chromium."""
    from axe_playwright_python.sync_playwright import Axe

    app, _ = priced
    cheap = database.execute("SELECT id FROM listings WHERE seller_id = 'shop' AND score IS NOT NULL ORDER BY id LIMIT 1").fetchone()["id"]
    with BackgroundServer(app) as url:
        for width in (1360, 390):
            page = browser.new_page(viewport={"width": width, "height": 900})
            log_in(page, url)
            for path in (f"/listings/{cheap}", "/seller?id=shop&marketplace="):
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                assert "price 20% of retail" in page.inner_text("body")
                if width == 390:
                    assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
                else:
                    serious = [v["id"] for v in Axe().run(page).response["violations"] if v["impact"] in ("serious", "critical")]
                    assert not serious, (path, serious)
            page.close()
