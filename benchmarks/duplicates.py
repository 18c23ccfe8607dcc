"""Reused-photo grouping (`knockoff screen`'s duplicate_group and reference_copy) on real
photos with a copier's edits, and same-shoot photos that are not copies.

The set (seeded), every photo its own listing:
- originals: 100 sneakers `valid` photos and 60 grocery-packages `val` phone photos. The
  sneakers export holds augmented copies of one photo under consecutive file numbers, so
  originals are taken at least 10 numbers apart: no two of them are copies of each other;
- each original edited seven ways (benchmarks/copies.py: crop, halved, JPEG quality 35,
  mirrored, watermark, caption bar, all at once): 160 true groups of 8 photos;
- hard negatives: two more photos from each grocery original's folder (one product, one
  shoot), and 40 grocery-produce photos (unmonitored goods), each a group of its own.
Pairwise precision and recall: a pair of rows in one predicted group is right if both come
from one original. Also: the time the search adds to screening (with against without,
the same run otherwise), per 100k photos at this set's density of look-alikes; the FAISS
candidate search alone on 100k and 1M synthetic embeddings (sub-quadratic: the ratio);
and reference copies called on the grocery photos, none of which copies a reference.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/duplicates.py
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).parent))
from copies import EDITS  # noqa: E402  (the same seven edits as the copy verifier's benchmark)

from knockoff.runtime.cpu import cpu_description  # noqa: E402
from knockoff.screening.duplicates import DuplicateOptions, candidate_pairs  # noqa: E402
from knockoff.screening.screen import ScreenOptions, screen  # noqa: E402

ROOT = Path(os.environ.get("KNOCKOFF_DATA", "data/raw"))


def spaced_sneakers(rng: random.Random, count: int) -> list[str]:
    """Sneakers `valid` photos whose export numbers are at least 10 apart."""
    by_number = sorted((int(re.match(r"(\d+)_", Path(p).name).group(1)), p)
                       for p in glob.glob(str(ROOT / "sneakers/valid/images/*.jpg")))
    spaced, last = [], -100
    for number, path in by_number:
        if number - last >= 10:
            spaced.append(path)
            last = number
    return rng.sample(spaced, count)


def build_set(folder: Path, rng: random.Random) -> tuple[list[str], dict[str, str]]:
    """The photos (written under `folder`) and, per photo, its true group ('' = alone)."""
    grocery = sorted(glob.glob(str(ROOT / "grocery-packages/val/Packages/*/*/*.jpg")))
    originals = spaced_sneakers(rng, 100) + rng.sample(grocery, 60)
    photos: list[str] = []
    truth: dict[str, str] = {}
    for number, original in enumerate(originals):
        photos.append(original)
        truth[original] = f"g{number}"
        image = ImageOps.exif_transpose(Image.open(original))
        for name, edit in EDITS.items():
            path = folder / f"{number:03d}-{name.replace(' ', '-')}.jpg"
            path.write_bytes(edit(image))
            photos.append(str(path))
            truth[str(path)] = f"g{number}"
    chosen = set(originals)
    for original in originals[100:]:
        shoot = [p for p in sorted(glob.glob(str(Path(original).parent / "*.jpg"))) if p not in chosen]
        for negative in rng.sample(shoot, min(2, len(shoot))):
            chosen.add(negative)
            photos.append(negative)
            truth[negative] = ""
    for produce in rng.sample(sorted(glob.glob(str(ROOT / "grocery-produce/val/*/*/*.jpg"))), 40):
        photos.append(produce)
        truth[produce] = ""
    rng.shuffle(photos)
    return photos, truth


def pairwise(rows: list[dict], truth: dict[str, str]) -> dict[str, float]:
    predicted = defaultdict(list)
    for row in rows:
        if row["duplicate_group"] is not None:
            predicted[row["duplicate_group"]].append(row["path"])
    said = {frozenset(pair) for members in predicted.values() for pair in itertools.combinations(members, 2)}
    true_groups = defaultdict(list)
    for path, group in truth.items():
        if group:
            true_groups[group].append(path)
    real = {frozenset(pair) for members in true_groups.values() for pair in itertools.combinations(members, 2)}
    hits = len(said & real)
    return {"pairs_said": len(said), "true_pairs": len(real), "precision": hits / max(len(said), 1),
            "recall": hits / len(real)}


def per_edit_recall(rows: list[dict], truth: dict[str, str]) -> dict[str, float]:
    """Per edit: the share of edited photos put in one group with their original."""
    group_of = {row["path"]: row["duplicate_group"] for row in rows}
    original_of = {group: path for path, group in truth.items() if group and not re.match(r"\d{3}-", Path(path).name)}
    recall = {}
    for name in EDITS:
        edited = [p for p in truth if Path(p).name.endswith(f"-{name.replace(' ', '-')}.jpg")]
        joined = [p for p in edited if group_of[p] is not None and group_of[p] == group_of[original_of[truth[p]]]]
        recall[name] = len(joined) / len(edited)
    return recall


def timed_screen(manifest: Path, out: Path, args, duplicates: DuplicateOptions | None) -> float:
    started = time.perf_counter()
    screen([str(manifest)], out, args.model, args.index, ScreenOptions(batch_size=32, duplicates=duplicates))
    return time.perf_counter() - started


def synthetic_search_seconds(count: int, options: DuplicateOptions) -> float:
    """FAISS candidate search alone over `count` 256-d embeddings, 1% of them near-copies."""
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(count, 256)).astype(np.float16)
    copies = rng.choice(count, count // 100, replace=False)
    embeddings[copies] = embeddings[rng.choice(count, len(copies))] + rng.normal(scale=0.1, size=(len(copies), 256))
    started = time.perf_counter()
    candidate_pairs(embeddings, np.ones(count, bool), options)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--scale", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-duplicates.json"))
    args = parser.parse_args()
    options = DuplicateOptions()
    with tempfile.TemporaryDirectory(prefix="knockoff-duplicates-") as scratch:
        scratch = Path(scratch)
        photos, truth = build_set(scratch, random.Random(0))
        manifest = scratch / "crawl.csv"
        manifest.write_text("path,listing_id,seller_id\n" + "".join(
            f"{path},L{n},S{n % 37}\n" for n, path in enumerate(photos)))
        without_s = timed_screen(manifest, scratch / "plain.parquet", args, None)
        with_s = timed_screen(manifest, scratch / "results.parquet", args, options)
        rows = pq.read_table(scratch / "results.parquet", columns=["path", "duplicate_group", "reference_copy"]).to_pylist()
    grocery = [r for r in rows if "grocery" in r["path"]]
    report = {
        "cpu": cpu_description(), "photos": len(rows), "true_groups": len({g for g in truth.values() if g}),
        "options": options.__dict__,
        "grouping": pairwise(rows, truth), "recall_per_edit": per_edit_recall(rows, truth),
        "screen_seconds_without": round(without_s, 1), "screen_seconds_with": round(with_s, 1),
        "duplicate_search_seconds_per_100k": round((with_s - without_s) / len(rows) * 100_000, 1),
        "reference_copies_called_on_grocery_photos": f"{sum(r['reference_copy'] is not None for r in grocery)} of {len(grocery)}",
        "sneaker_rows_called_reference_copies": sum(r["reference_copy"] is not None for r in rows if "grocery" not in r["path"]),
        "candidate_search_seconds": {},
    }
    print(json.dumps(report, indent=2), flush=True)
    for count in args.scale:
        report["candidate_search_seconds"][str(count)] = round(synthetic_search_seconds(count, options), 1)
        print(f"candidate search over {count} embeddings: {report['candidate_search_seconds'][str(count)]} s", flush=True)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"peak RSS {report['peak_rss_mb']} MB -> {args.out}")


if __name__ == "__main__":
    main()
