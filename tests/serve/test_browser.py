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


def test_select_all_ticks_every_item_on_the_page_and_bulk_decides_them(browser, server, database, users):
    page = browser.new_page()
    log_in(page, server)
    page.goto(f"{server}/queue?status=pending")
    boxes = page.locator('input[name="item"]')
    assert boxes.count() > 1 and not any(boxes.nth(i).is_checked() for i in range(boxes.count()))
    page.check("#select-all")
    assert all(boxes.nth(i).is_checked() for i in range(boxes.count()))
    ticked = boxes.count()
    with page.expect_navigation():
        page.click("#bulk button.unsure")
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision = 'unsure'").fetchone()[0] == ticked


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
    page.wait_for_function("document.getElementById('reference-image').src.endsWith('/regions/1?full=1')")
    photo, reference = transforms()
    assert "scale(3)" in photo and "scale(3)" in reference and photo != reference  # each centred on its own region
    assert "genuine reference" in page.locator("#reference-caption").inner_text()
    page.keyboard.press("0")  # whole photos again: region 1's box in view, to click
    page.locator("#pane-photo .rbox").first.click()
    page.wait_for_function("document.getElementById('reference-image').src.endsWith('/regions/0?full=1')")
    assert "known fake" in page.locator("#reference-caption").inner_text()
    page.locator("#pane-reference").hover()
    page.mouse.wheel(0, -100)
    photo, reference = transforms()
    assert "scale(3.75)" in photo and "scale(3.75)" in reference  # zoomed together, from either side
    page.locator("#region-list button").nth(1).click()
    page.wait_for_function("document.getElementById('reference-image').src.endsWith('/regions/1?full=1')")
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
