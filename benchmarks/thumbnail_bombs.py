"""The review service while its item thumbnails are decompression bombs (issue 23's probe).

Serves a real review app (uvicorn, in this process) whose items point at bombs that screening
refuses, logs in as an analyst, and requests their thumbnails at once, --at-once per round:
1. 169-megapixel 8-bit PNGs (13,000 x 13,000, under 0.5 MB each): over the pixel ceiling;
2. 36-megapixel 16-bit RGBA PNGs (6,000 x 6,000, about 290 MB decoded): under the pixel
   ceiling, over the ceiling on decoded bytes;
3. the evidence pack's inline image (`knockoff.listings.evidence._data_uri`) of each.
Each round starts from a reset peak (/proc/self/clear_refs) and prints every answer, its time,
and the process's peak RSS (VmHWM). No thresholds: the figures are for the closing note.

    PYTHONPATH=. python benchmarks/thumbnail_bombs.py
"""

from __future__ import annotations

import argparse
import http.cookiejar
import re
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from knockoff_serve.app import create_app
from knockoff_serve.auth import add_user
from knockoff_serve.runs import import_results
from knockoff_serve.server import BackgroundServer
from knockoff_serve.settings import Settings
from knockoff_serve.store import closing, connect, initialize

from knockoff.listings.evidence import _data_uri
from tests.helpers import SAMPLE, zero_png
from tests.serve.conftest import PASSWORD, result_rows, write_results


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from the current RSS


def logged_in(url: str, name: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(f"{url}/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"name": name, "password": PASSWORD, "csrf_token": token}).encode()
    opener.open(f"{url}/login", data=body, timeout=30).read()
    return opener


def fetch(opener: urllib.request.OpenerDirector, url: str) -> str:
    started = time.monotonic()
    with opener.open(url, timeout=120) as response:
        body = response.read()
        note = response.headers.get("X-Knockoff-Not-Shown", "shown")
        return f"{response.status}, {len(body) // 1024} KB in {time.monotonic() - started:.2f} s: {note}"


def thumbnails_at_once(opener: urllib.request.OpenerDirector, url: str, items: list[int]) -> list[str]:
    answers: list[str] = []
    threads = [threading.Thread(target=lambda i=i: answers.append(fetch(opener, f"{url}/images/items/{i}"))) for i in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at-once", type=int, default=4)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp())
    photos = home / "photos"
    rounds = {
        "169 MP 8-bit grey PNG": [zero_png(photos / f"mp169-{i}.png", 13_000, 13_000, bit_depth=8) for i in range(args.at_once)],
        "36 MP 16-bit RGBA PNG": [zero_png(photos / f"rgba36-{i}.png", 6_000, 6_000, bit_depth=16, channels=4)
                                  for i in range(args.at_once)],
    }
    settings = Settings(home=home / "home", data_root=SAMPLE, image_roots=(SAMPLE, photos))
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        add_user(connection, "ana", "analyst", PASSWORD)
        rows = result_rows(3 * args.at_once)
        screened = [row for row in rows if not row["error"]]
        for row, bomb in zip(screened, [bomb for files in rounds.values() for bomb in files]):
            row["path"] = str(bomb)
        real_photo = screened[-1]["path"]
        import_results(connection, write_results(home / "results.parquet", rows))
        item_of = {row["path"]: row["id"] for row in connection.execute("SELECT id, path FROM items")}
    with BackgroundServer(create_app(settings)) as url:
        opener = logged_in(url, "ana")
        print(f"warm-up: a real photo's thumbnail -> {fetch(opener, url + '/images/items/' + str(item_of[real_photo]))}")
        for label, files in rounds.items():
            reset_peak()
            before = peak_rss_mb()
            answers = thumbnails_at_once(opener, url, [item_of[str(f)] for f in files])
            print(f"{len(files)} thumbnails of a {label} ({files[0].stat().st_size // 1024} KB) at once: "
                  f"peak RSS {before:.0f} -> {peak_rss_mb():.0f} MB")
            for answer in sorted(answers):
                print(f"  {answer}")
        for label, files in rounds.items():
            reset_peak()
            before = peak_rss_mb()
            started = time.monotonic()
            uri = _data_uri(files[0])
            print(f"evidence pack's inline image of a {label}: {len(uri) // 1024} KB data URI in "
                  f"{time.monotonic() - started:.2f} s, peak RSS {before:.0f} -> {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
