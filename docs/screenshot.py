"""Regenerate docs/listings-page.png, docs/listing-page.png, docs/seller-page.png, docs/listing-phone.png,
docs/item-page.png, docs/queue-page.png, docs/sellers-page.png,
docs/gallery-page.png, docs/evidence-pack.png, and local evidence (docs/local-evidence-overlay.png,
docs/local-evidence-zoom.png, docs/evidence-pack-regions.png), and listing signals (docs/listing-signals.png,
docs/listing-by-signals.png, docs/seller-signals.png, docs/evidence-pack-signals.png): the review service on the
bundled sample (its listings.csv names sellers and prices, resellers.csv reuses official photos), screened with the
shipped model and a copy of the shipped gallery that holds the sample's catalogue (data/sample/catalogue.csv), in
headless Chromium.

    python docs/screenshot.py   (from the repository root, after `make test`)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from knockoff_serve.app import create_app
from knockoff_serve.auth import add_user
from knockoff_serve.runs import import_results
from knockoff_serve.server import BackgroundServer
from knockoff_serve.settings import Settings
from knockoff_serve.store import closing, connect, initialize
from playwright.sync_api import sync_playwright

from knockoff.data import data_root
from knockoff.data.catalogue import read_catalogue
from knockoff.gallery.indexing import add_catalogue
from knockoff.listings.evidence import write_evidence
from knockoff.screening.screen import screen

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="knockoff-shots-"))
    results = work / "sample.parquet"
    gallery = work / "models" / "gallery"
    shutil.copytree("models/gallery", gallery)  # the shipped ratios (models/listing-signals.json) are found as the default
    add_catalogue(Path("models/knockoff.onnx"), gallery, read_catalogue(Path("data/sample/catalogue.csv"), Path("data/sample/rates.csv")))
    screen(["data/sample/listings.csv", "data/sample/resellers.csv"], results, gallery_path=gallery)
    settings = Settings(home=work / "home", data_root=data_root(), gallery=gallery)
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        import_results(connection, results)
        add_user(connection, "alice", "admin", "screenshot-password")
    with BackgroundServer(create_app(settings)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(f"{url}/login")
        page.fill("#name", "alice")
        page.fill("#password", "screenshot-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/queue")
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/queue-page.png")
        page.goto(f"{url}/listings?seller=sole-outlet")  # the listing queue, one seller's view
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/listings-page.png")
        page.goto(f"{url}/listings")
        with page.expect_navigation():
            page.keyboard.press("s")  # the first pending listing
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/listing-page.png")
        phone = browser.new_page(viewport={"width": 390, "height": 844}, storage_state=page.context.storage_state())
        phone.goto(page.url)
        phone.wait_for_load_state("networkidle")
        phone.screenshot(path="docs/listing-phone.png")
        phone.close()
        page.goto(f"{url}/seller?id=sole-outlet&run=1")
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/seller-page.png")
        page.locator("ul.signals").first.scroll_into_view_if_needed()
        page.locator("div.listing", has=page.locator("ul.signals")).first.screenshot(path="docs/seller-signals.png")
        page.goto(f"{url}/listings?q=L1006")  # a cheap listing of a counterfeit shop
        page.click("text=L1006")
        page.wait_for_load_state("networkidle")
        page.locator("#why").screenshot(path="docs/listing-signals.png")
        page.goto(f"{url}/listings?q=R3002")  # a stolen official photo, alone, at 31% of retail
        page.click("text=R3002")
        page.wait_for_load_state("networkidle")
        page.locator("#why").screenshot(path="docs/listing-by-signals.png")
        page.goto(f"{url}/queue?status=pending&product=nike+air+force")
        page.click("#start")
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/item-page.png", full_page=False)
        panel = page.locator("#local-evidence")
        panel.scroll_into_view_if_needed()
        page.wait_for_load_state("networkidle")
        panel.screenshot(path="docs/local-evidence-overlay.png")  # the regions drawn on the photo
        page.keyboard.press("1")  # both photos to region 1, zoomed together
        page.wait_for_load_state("networkidle")
        panel.screenshot(path="docs/local-evidence-zoom.png")
        page.goto(f"{url}/sellers")
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/sellers-page.png", full_page=False)
        page.goto(f"{url}/queue?screening=no_match")
        page.click("text=L1017")
        page.wait_for_selector("#status-reason")
        with page.expect_navigation():
            page.keyboard.press("r")  # an admin's "add as reference": applied at once, audited
        page.goto(f"{url}/gallery")
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/gallery-page.png", full_page=False)
        pack = write_evidence(results, "sole-outlet", work / "pack", settings.database, data_root(), pdf=False)
        page.goto(pack.html.as_uri())
        page.wait_for_load_state("networkidle")
        page.screenshot(path="docs/evidence-pack.png", full_page=False)
        section = page.locator("section.listing", has=page.locator("figure.region")).first
        section.scroll_into_view_if_needed()
        section.screenshot(path="docs/evidence-pack-regions.png")
        page.locator("section.listing table").first.screenshot(path="docs/evidence-pack-signals.png")
        browser.close()
    shutil.rmtree(work)
    print("wrote docs/listings-page.png, docs/listing-page.png, docs/listing-phone.png, docs/seller-page.png, "
          "docs/item-page.png, docs/queue-page.png, docs/sellers-page.png, docs/gallery-page.png, docs/evidence-pack.png, "
          "docs/local-evidence-overlay.png, docs/local-evidence-zoom.png, docs/evidence-pack-regions.png, "
          "docs/listing-signals.png, docs/listing-by-signals.png, docs/seller-signals.png and docs/evidence-pack-signals.png")


if __name__ == "__main__":
    main()
