"""The review service while decompression bombs are uploaded to `POST /api/score`.

Serves the shipped model and gallery (uvicorn, in this process), then:
1. idle: `GET /api/health` every 50 ms for --seconds, latency median and max;
2. the same while --bombs uploads of an all-zero 13,000 x 13,000 16-bit PNG (329 KB; 169
   megapixels, under Pillow's own limit) and real photos are scored at once;
and prints each bomb's answer, the latencies, and the process's peak RSS (VmHWM) before and
after. No thresholds: the figures are for the README and the closing note.

    PYTHONPATH=. python benchmarks/service_under_bomb.py   (the bomb is tests/helpers.zero_png)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from knockoff_serve.app import create_app
from knockoff_serve.auth import add_user, create_api_token
from knockoff_serve.server import BackgroundServer
from knockoff_serve.settings import Settings
from knockoff_serve.store import closing, connect, initialize

from tests.helpers import zero_png


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def upload(url: str, token: str, name: str, data: bytes) -> tuple[int, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/score", body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()).get("status", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()).get("detail", "")[:120]


def health_latencies(url: str, seconds: float) -> list[float]:
    latencies, stop = [], time.monotonic() + seconds
    while time.monotonic() < stop:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{url}/api/health", timeout=60) as response:
            response.read()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return latencies


def describe(latencies: list[float]) -> str:
    return f"median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms ({len(latencies)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bombs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--photo", type=Path, default=sorted(Path("data/sample/sneakers/valid/images").glob("*.jpg"))[0])
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp())
    settings = Settings(home=home)
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        add_user(connection, "bench", "analyst", "a-long-enough-password")
        token = create_api_token(connection, "bench")
    bomb = zero_png(home / "bomb.png", 13_000, 13_000).read_bytes()
    photo = args.photo.read_bytes()
    with BackgroundServer(create_app(settings)) as url:
        print(f"warm-up: real photo -> {upload(url, token, 'photo.jpg', photo)}; peak RSS {peak_rss_mb():.0f} MB")
        print(f"idle: /api/health {describe(health_latencies(url, args.seconds))}")
        answers: list[tuple[int, str]] = []
        uploads = [threading.Thread(target=lambda: answers.append(upload(url, token, "bomb.png", bomb)))
                   for _ in range(args.bombs)]
        uploads += [threading.Thread(target=lambda: answers.append(upload(url, token, "photo.jpg", photo)))
                    for _ in range(args.bombs)]
        for thread in uploads:
            thread.start()
        busy = health_latencies(url, args.seconds)
        for thread in uploads:
            thread.join()
        print(f"during {args.bombs} bombs ({len(bomb) // 1024} KB each) and {args.bombs} photos: /api/health {describe(busy)}")
        for status, detail in sorted(answers):
            print(f"  {status}: {detail}")
        print(f"peak RSS of the service process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
