"""Review latency: from a keyboard decision to the next page's `load` event, for photos and
for listings.

Builds a results file from a real screening run (its rows repeated under new listing ids)
with at least `--rows` photos and `--listings` listings, serves it, logs in with headless
Chromium (Playwright), and decides with the keyboard: photos on the photo queue, then whole
listings on the listing queue (one key decides every photo of a listing). Each timing covers
the decision POST, leasing the next one, the navigation and the next page's load (HTML and
images). Prints median, p90 and max; no thresholds.

    python benchmarks/review_latency.py results.parquet [--rows 10000] [--listings 10000] [--photos-per-listing 3] [--decisions 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from knockoff_serve.app import create_app
from knockoff_serve.auth import add_user
from knockoff_serve.runs import import_results
from knockoff_serve.server import BackgroundServer
from knockoff_serve.settings import Settings
from knockoff_serve.store import closing, connect, initialize
from playwright.sync_api import sync_playwright

from knockoff.data import data_root

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def grow(results: Path, rows: int, out: Path, photos_per_listing: int = 1) -> Path:
    """`rows` rows made of the real results repeated, grouped `photos_per_listing` to a listing
    under new listing ids (a photo's own listing id when 1)."""
    table = pq.read_table(results)
    copies, schema = [], table.schema
    for copy in range((rows + table.num_rows - 1) // table.num_rows):
        ids = [f"{value}-{copy}" for value in table.column("listing_id").to_pylist()]
        copies.append(table.set_column(table.schema.get_field_index("listing_id"), "listing_id", pa.array(ids, pa.string())))
    grown = pa.concat_tables(copies).slice(0, rows)
    if photos_per_listing > 1:  # each listing one seller's (200 sellers)
        for name, value in (("listing_id", "G{}"), ("seller_id", "seller-{}")):
            groups = [i // photos_per_listing for i in range(rows)]
            grown = grown.set_column(grown.schema.get_field_index(name), name, pa.array(
                [value.format(g if name == "listing_id" else g % 200) for g in groups], pa.string()))
    pq.write_table(grown.replace_schema_metadata(schema.metadata), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--listings", type=int, default=10_000, help="at least this many listings (rows grow to hold them)")
    parser.add_argument("--photos-per-listing", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="knockoff-latency-"))
    settings = Settings(home=work / "home", data_root=data_root())
    initialize(settings.database)
    rows = max(args.rows, args.listings * args.photos_per_listing)
    with closing(connect(settings.database)) as connection:
        started = time.perf_counter()
        import_results(connection, grow(args.results, rows, work / "results.parquet", args.photos_per_listing))
        imported = time.perf_counter() - started
        add_user(connection, "bench", "analyst", "benchmark-password")
        total = connection.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        listings = connection.execute("SELECT COUNT(*) FROM listings").fetchone()[0]
    print(f"results: {total} photos in {listings} listings (imported in {imported:.1f} s); {os.cpu_count()} cores")

    with BackgroundServer(create_app(settings)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(f"{url}/login")
        page.fill("#name", "bench")
        page.fill("#password", "benchmark-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/queue")
        started = time.perf_counter()
        page.goto(f"{url}/queue?status=pending&after=1.5:0")  # a page deep in the queue, by cursor
        queue_page = time.perf_counter() - started
        page.goto(f"{url}/items/next?status=pending")
        page.wait_for_load_state("load")
        timings = []
        for i in range(args.decisions):
            page.wait_for_selector("#listing-photo")
            started = time.perf_counter()
            with page.expect_navigation(wait_until="load"):
                page.keyboard.press("fgu"[i % 3])
            timings.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        page.goto(f"{url}/listings?status=pending&seller=&sort=price")  # the listing queue, re-sorted
        listing_queue_page = time.perf_counter() - started
        page.goto(f"{url}/listings?status=pending")
        with page.expect_navigation(wait_until="load"):
            page.keyboard.press("s")  # start reviewing listings
        listing_timings = []
        for i in range(args.decisions):
            page.wait_for_selector("#decide-form")
            page.wait_for_load_state("load")
            started = time.perf_counter()
            with page.expect_navigation(wait_until="load"):
                page.keyboard.press("fgu"[i % 3])
            listing_timings.append((time.perf_counter() - started) * 1000)
        browser.close()

    print(f"photo queue page deep in {total} photos: {queue_page * 1000:.0f} ms; "
          f"listing queue page sorted by price over {listings} listings: {listing_queue_page * 1000:.0f} ms")
    for unit, measured in (("photo", timings), ("listing", listing_timings)):
        measured.sort()
        p90 = measured[int(0.9 * (len(measured) - 1))]
        print(f"keyboard decision -> next {unit} loaded, {len(measured)} decisions: "
              f"median {statistics.median(measured):.0f} ms, p90 {p90:.0f} ms, max {measured[-1]:.0f} ms")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
