"""Local evidence from the int8 model and its int8 patch model against fp32's, on the same
photos: how often the top region is the same place, and how often fp32's top region is among
int8's regions.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/int8_regions.py
"""

import os
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")

from pathlib import Path  # noqa: E402

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from knockoff.data import read_sources  # noqa: E402
from knockoff.runtime.cpu import cpu_description  # noqa: E402
from knockoff.screening.screen import screen  # noqa: E402

CLOSE = 0.1  # region centres this close (a fraction of the photo) are the same place


def centre(region: dict) -> tuple[float, float]:
    return (region["x0"] + region["x1"]) / 2, (region["y0"] + region["y1"]) / 2


def same_place(a: dict, b: dict) -> bool:
    (ax, ay), (bx, by) = centre(a), centre(b)
    return abs(ax - bx) < CLOSE and abs(ay - by) < CLOSE


def main(count: int = 300) -> None:
    paths = [os.path.abspath(r.path) for r in read_sources(["sneakers/valid"])][:count]
    work = Path(tempfile.mkdtemp(prefix="knockoff-int8-regions-"))
    pq.write_table(pa.table({"listing_id": [str(i) for i in range(len(paths))], "path": paths}), work / "crawl.parquet")
    rows = {}
    for model in ("models/knockoff.onnx", "models/knockoff.int8.onnx"):
        screen([str(work / "crawl.parquet")], work / "r.parquet", Path(model), Path("models/gallery"))
        rows[model] = pq.read_table(work / "r.parquet", columns=["regions"]).column("regions").to_pylist()
    fp32, int8 = rows.values()
    both = [(a, b) for a, b in zip(fp32, int8) if a and b]
    same_top = sum(same_place(a[0], b[0]) for a, b in both)
    among = sum(any(same_place(a[0], region) for region in b) for a, b in both)
    print(f"CPU: {cpu_description()}")
    print(f"photos with regions from both: {len(both)} of {len(paths)}; int8's top region at fp32's: {same_top} "
          f"({same_top / len(both):.2f}); fp32's top region among int8's: {among} ({among / len(both):.2f})")


if __name__ == "__main__":
    main()
