"""`knockoff screen` end to end with the fp32 and the int8 model, with and without local
evidence, in interleaved pairs on the same photos (the CPU heads the output).

    KNOCKOFF_DATA=../shared/datasets python benchmarks/int8_end_to_end.py [--count 1000] [--pairs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from knockoff.data import read_sources  # noqa: E402
from knockoff.runtime.cpu import cpu_description  # noqa: E402
from knockoff.screening.screen import ScreenOptions, screen  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--int8", type=Path, default=Path("models/knockoff.int8.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    args = parser.parse_args()
    paths = [os.path.abspath(r.path) for r in read_sources(["sneakers/train", "sneakers/valid"])][:args.count]
    work = Path(tempfile.mkdtemp(prefix="knockoff-int8-e2e-"))
    pq.write_table(pa.table({"listing_id": [f"L{i}" for i in range(len(paths))], "path": paths}), work / "crawl.parquet")
    print(f"CPU: {cpu_description()}; {len(paths)} photos", flush=True)
    for regions in (False, True):
        ratios = []
        for run in range(args.pairs):
            rates = []
            for model in (args.model, args.int8):
                started = time.perf_counter()
                summary = screen([str(work / "crawl.parquet")], work / f"{run}.parquet", model, args.index,
                                 ScreenOptions(regions=regions))
                rates.append(summary.screened / (time.perf_counter() - started))
            ratios.append(rates[1] / rates[0])
            print(f"local evidence {'on' if regions else 'off'}, pair {run}: fp32 {rates[0]:.1f} images/s, "
                  f"int8 {rates[1]:.1f}, int8/fp32 {ratios[-1]:.2f}", flush=True)
        print(f"local evidence {'on' if regions else 'off'}: int8/fp32 end to end, median {statistics.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
