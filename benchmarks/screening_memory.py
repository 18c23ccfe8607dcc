"""Peak memory of `knockoff screen` against crawl size: it must stay flat.

Screens manifests of N listing photos (real sneaker JPEGs, repeated to reach N; each row its
own listing) in a fresh process per size and reports that process's peak RSS.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/screening_memory.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from knockoff.data import read_sources


def peak_rss_mb(command: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, last output line) of a child process run to completion."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t, r.returncode); "
               "print(r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-2000:])")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True)
    first, last = result.stdout.strip().split("\n", 1)
    kilobytes, seconds, returncode = first.split()
    if returncode != "0":
        raise SystemExit(f"{' '.join(command)} failed: {last}")
    return int(kilobytes) / 1024, float(seconds), last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", nargs="+", default=["sneakers/train", "sneakers/valid"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-memory.json"))
    args = parser.parse_args()
    paths = [os.path.abspath(record.path) for record in read_sources(args.photos)]  # the manifest lives elsewhere
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            manifest = Path(scratch) / f"crawl-{size}.csv"
            manifest.write_text("listing_id,path\n" + "".join(f"L{i},{paths[i % len(paths)]}\n" for i in range(size)))
            peak, seconds, line = peak_rss_mb([sys.executable, "-m", "knockoff", "screen", str(manifest),
                                               "--out", str(Path(scratch) / f"results-{size}.parquet")])
            rows.append({"images": size, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1),
                         "images_per_s": round(size / seconds, 1)})
            print(f"{size:>8,} images: peak RSS {peak:7.1f} MB, {seconds:7.1f} s ({size / seconds:.1f} images/s)  [{line}]",
                  flush=True)
    smallest, largest = rows[0], rows[-1]
    ratio = largest["peak_rss_mb"] / smallest["peak_rss_mb"]
    print(f"peak RSS {largest['images']:,} / {smallest['images']:,} images: {ratio:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "peak_rss_ratio": round(ratio, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
