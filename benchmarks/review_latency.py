"""Review latency: from a keyboard decision on one item to the next item's page `load` event.

Builds a 10,000-row results file from a real screening run (its rows repeated under new
listing ids), serves it, logs in with headless Chromium (Playwright), and decides items with
the keyboard. Each timing covers the decision POST, leasing the next item, the navigation
and the next page's load (HTML and images). Prints median, p90 and max; no thresholds.

    python benchmarks/review_latency.py results.parquet [--rows 10000] [--decisions 40]
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


def grow(results: Path, rows: int, out: Path) -> Path:
    """`rows` rows made of the real results repeated, each copy with its own listing ids."""
    table = pq.read_table(results)
    copies, schema = [], table.schema
    for copy in range((rows + table.num_rows - 1) // table.num_rows):
        ids = [f"{value}-{copy}" for value in table.column("listing_id").to_pylist()]
        copies.append(table.set_column(table.schema.get_field_index("listing_id"), "listing_id", pa.array(ids, pa.string())))
    pq.write_table(pa.concat_tables(copies).slice(0, rows).replace_schema_metadata(schema.metadata), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="knockoff-latency-"))
    settings = Settings(home=work / "home", data_root=data_root())
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        started = time.perf_counter()
        import_results(connection, grow(args.results, args.rows, work / "results.parquet"))
        imported = time.perf_counter() - started
        add_user(connection, "bench", "analyst", "benchmark-password")
        total = connection.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    print(f"results: {total} rows (imported in {imported:.1f} s); {os.cpu_count()} cores")

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
        browser.close()

    timings.sort()
    p90 = timings[int(0.9 * (len(timings) - 1))]
    print(f"queue page deep in {total} rows: {queue_page * 1000:.0f} ms")
    print(f"keyboard decision -> next item loaded, {len(timings)} decisions: "
          f"median {statistics.median(timings):.0f} ms, p90 {p90:.0f} ms, max {timings[-1]:.0f} ms")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
