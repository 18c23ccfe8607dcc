"""Listing and seller aggregation at crawl scale: time, and peak memory that must not grow.

Writes synthetic results files (RESULT_SCHEMA, every column present, evidence lists empty)
of each --sizes rows — 1 to 3 photos per listing, 1 to 200 listings per seller, statuses
and scores drawn at random — then runs `knockoff sellers` (which computes the listings too)
on each in a fresh process and reads that process's peak RSS (VmHWM). Prints seconds per
100k rows and the peak-RSS ratio of the largest to the smallest size.

    python benchmarks/listings_scale.py --sizes 100000 1000000 [--catalogue]

With --catalogue the results carry a catalogue and the shipped signal ratios, so every
listing's price, title and reuse are read (knockoff/listings/signals.py): run it beside a
run without to read the signals' cost.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.data.catalogue import Catalogue, CatalogueProduct
from knockoff.runtime.cpu import cpu_description
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores
from knockoff.screening.results import RESULT_SCHEMA

CHUNK = 100_000
MEASURE = """
import sys, time
from pathlib import Path
from knockoff.listings import write_sellers
started = time.perf_counter()
sellers = write_sellers(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - started
peak = next(int(l.split()[1]) for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM:'))
print(seconds, peak / 1024, sellers.num_rows)
"""


def synthetic_results(path: Path, rows: int, seed: int = 0, catalogue: bool = False) -> None:
    rng = np.random.default_rng(seed)
    statuses = np.array(["scored", "no_match", "unsupported", "error"])
    # What `knockoff screen` copies from the gallery: the held-back scores listings are calibrated from.
    held_back = HeldBackScores(0.95, 0.01, {"product:nike air force": HeldBackPool(
        sorted(rng.beta(0.5, 3, 300).tolist()), sorted(rng.beta(3, 0.5, 300).tolist()))},
        {"nike air force": "product:nike air force"})
    metadata = {"knockoff.held_back_scores": held_back.to_json()}
    if catalogue:  # the brand's catalogue and the shipped signal ratios, as screening with a catalogue carries them
        metadata["knockoff.catalogue"] = json.dumps(Catalogue((CatalogueProduct(
            "nike air force", "nike", 110.0, "USD", ("https://img.example/official.jpg",), ("S1",)),)).to_dict())
        metadata["knockoff.listing_signals"] = Path("models/listing-signals.json").read_text()
    schema = RESULT_SCHEMA.with_metadata(metadata)
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        listing = seller = 0
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            photos = rng.integers(1, 4, count)  # photos of the listing each row starts
            listing_of = np.repeat(np.arange(listing, listing + count), photos)[:count]
            listing = int(listing_of[-1]) + 1
            seller_of = seller + listing_of // 60  # about 60 listings (1-200) per seller
            seller = int(seller_of[-1]) + 1
            status = statuses[rng.choice(4, count, p=[0.45, 0.5, 0.04, 0.01])]
            score = np.where(status == "scored", rng.beta(0.5, 3, count), np.nan)
            columns = {name: pa.nulls(count, RESULT_SCHEMA.field(name).type) for name in RESULT_SCHEMA.names}
            columns.update({
                "listing_id": pa.array([f"L{i}" for i in listing_of]),
                "seller_id": pa.array([f"S{i}" for i in seller_of]),
                "path": pa.array([f"https://img.example/{start + i}.jpg" for i in range(count)]),
                "status": pa.array(status),
                "score": pa.array(score, pa.float32(), from_pandas=True),
                "flagged": pa.array(score > 0.6),
                "threshold": pa.array(np.where(status == "scored", 0.6, np.nan), pa.float32(), from_pandas=True),
                "product": pa.array(np.where(status == "scored", "nike air force", None)),
                "brand": pa.array(np.where(status == "scored", "nike", None)),
                "price": pa.array(rng.uniform(10, 140, count)),
                "currency": pa.array(np.full(count, "USD")),
                "title": pa.array([f"Air Force 1 size {40 + i % 8}" if i % 2 else f"item {i}" for i in range(count)]),
            })
            writer.write_table(pa.table(columns, schema=schema))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--catalogue", action="store_true",
                        help="the results carry a catalogue and the shipped signal ratios: every listing's price, title and reuse are read")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-listings-scale.json"))
    args = parser.parse_args()
    figures = {}
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory(prefix="knockoff-scale-") as scratch:
        for size in args.sizes:
            results = Path(scratch) / f"results-{size}.parquet"
            synthetic_results(results, size, catalogue=args.catalogue)
            answer = subprocess.run([sys.executable, "-c", MEASURE, str(results), str(Path(scratch) / "sellers.parquet")],
                                    capture_output=True, text=True, check=True).stdout.split()
            seconds, peak_mb, sellers = float(answer[0]), float(answer[1]), int(answer[2])
            figures[size] = {"seconds": round(seconds, 2), "seconds_per_100k": round(seconds / size * 100_000, 2),
                             "peak_rss_mb": round(peak_mb, 1), "sellers": sellers}
            print(f"{size:>10,} rows: {seconds:.1f} s ({seconds / size * 100_000:.2f} s per 100k), "
                  f"peak RSS {peak_mb:.0f} MB, {sellers} sellers", flush=True)
    smallest = min(figures)
    ratios = {size: round(figures[size]["peak_rss_mb"] / figures[smallest]["peak_rss_mb"], 3) for size in sorted(figures)[1:]}
    for size, ratio in ratios.items():
        print(f"peak RSS ratio {size:,} / {smallest:,} rows: {ratio:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_description(), "catalogue": args.catalogue, "sizes": figures,
                                    "peak_rss_ratio_to_smallest": {str(k): v for k, v in ratios.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
