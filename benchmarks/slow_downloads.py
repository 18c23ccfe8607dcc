"""Slow URLs in a crawl: how long `knockoff screen` waits for servers that trickle bytes.

A local HTTP server sends one byte every 0.2 s for ever on /slow. The manifest mixes
--local real photos with --slow such URLs spread through it; the download deadline is set to
--deadline seconds for the run. Each slow URL must cost one error row and, since downloads
run on a pool of their own, they wait side by side: the run should take about one deadline
more than the local photos alone, not one deadline per slow URL (or per decode thread).

    python benchmarks/slow_downloads.py --local 300 --slow 8 --deadline 5
"""

from __future__ import annotations

import argparse
import http.server
import os
import tempfile
import threading
import time
from pathlib import Path

from knockoff.images import decode
from knockoff.screening.screen import ScreenOptions, screen


class Trickle(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.end_headers()
        try:
            for _ in range(3000):
                self.wfile.write(b"\xff")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def timed_screen(paths: list[str], options: ScreenOptions) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Path(scratch) / "crawl.csv"
        manifest.write_text("path\n" + "\n".join(paths) + "\n")
        started = time.perf_counter()
        summary = screen([str(manifest)], Path(scratch) / "results.parquet", Path("models/knockoff.onnx"),
                         Path("models/gallery"), options)
        return time.perf_counter() - started, summary.line().split(" -> ")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("data/sample/sneakers"))
    parser.add_argument("--local", type=int, default=300)
    parser.add_argument("--slow", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=5.0)
    args = parser.parse_args()
    os.environ[decode.ALLOW_PRIVATE_URLS_ENV] = "1"  # the slow server runs on this machine

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    decode.DOWNLOAD_DEADLINE_S = args.deadline
    found = sorted(str(p.resolve()) for p in args.photos.rglob("*.jpg"))
    local = [found[i % len(found)] for i in range(args.local)]
    every = max(1, args.local // max(args.slow, 1))
    mixed = []
    for i, path in enumerate(local):
        if i % every == 0 and len(mixed) - i < args.slow:
            mixed.append(f"http://127.0.0.1:{server.server_address[1]}/slow?{i}")
        mixed.append(path)
    options = ScreenOptions()
    alone, line = timed_screen(local, options)
    print(f"{args.local} local photos alone: {alone:.1f} s | {line}")
    with_slow, line = timed_screen(mixed, options)
    print(f"with {len(mixed) - len(local)} slow URLs (deadline {args.deadline:g} s): {with_slow:.1f} s | {line}")
    print(f"extra wait: {with_slow - alone:.1f} s = {(with_slow - alone) / args.deadline:.2f} deadlines "
          f"(one after another would be {len(mixed) - len(local)})")
    server.shutdown()


if __name__ == "__main__":
    main()
