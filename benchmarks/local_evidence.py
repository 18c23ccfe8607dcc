"""Local evidence, measured: the pointing game, local scores, and what regions cost.

Against the shipped model, its patch model and the gallery as calibrated (the held-back
`valid` photos taken out of it and of its patch banks), sneakers `valid` photos are judged
as screening judges them, and for each judged one:
- **Pointing game**: does the top region's centre fall inside a labelled product box? Split
  into new photographs (the gallery's calibration photos: no copy of them among the
  references) and copies. A random cell's chance (the share of cells inside the boxes) and
  the regions chosen over every cell (no objectness head) are given beside it.
- **Local scores** on new photographs, ROC-AUC of fakes against genuine photos: today's score
  (raw), the local scores alone, and each combined with today's by a logistic fit on four
  fifths of the photographs and applied to the fifth (grouped by photograph). Cold start
  (a product with genuine references only): the product's known-fake bank left out, its
  genuine photos against its fakes by the worst region's distance, against today's cold-start
  evidence (the nearest genuine reference's similarity). The model itself trained on these
  fakes; the cold-start figure measures the bank, not an unseen product's model.
- **Speed**: `knockoff screen` on the same photos with and without regions, alternated in one
  run, images/s, naming the CPU: on sneakers `valid` (most photos judged, the worst case) and
  on a crawl where 1 photo in 8 is a sneaker and the rest produce nobody monitors.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/local_evidence.py --out reports/benchmark-local-evidence.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from knockoff.data import data_root, portable_path, read_source
from knockoff.data.records import FAKE, GENUINE
from knockoff.data.roboflow import cells_inside, product_boxes
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.regions import find_regions
from knockoff.gallery.store import Gallery
from knockoff.gallery.matching import match
from knockoff.images.decode import load_rgb
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.runtime.patches import PatchModel, patches_path
from knockoff.scoring.calibration import fit_logistic
from knockoff.scoring.open_world import SCORED
from knockoff.screening.screen import ScreenOptions, screen


def judged_photos(model: Path, gallery: Gallery, spec: str):
    """Every decodable photo of `spec`: record, pixels, match (against the gallery as calibrated)."""
    embedder = OnnxEmbedder(model)
    records = [r for r in read_source(spec) if r.product]
    pixels = np.stack([load_rgb(r.path, embedder.info.input_size) for r in records])
    embeddings = np.concatenate([embedder.embed(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
    return records, pixels, match(gallery, embeddings, with_evidence=False, claimed=[r.product for r in records])


def local_figures(features: np.ndarray, product: str, banks, with_fakes: bool = True) -> dict:
    """A photo's local scores: the worst region's distance (PatchCore), on the product's cells,
    and how much nearer known fakes than genuine references its five most fake-like cells are."""
    cells = np.ascontiguousarray(features.reshape(-1, features.shape[-1]), np.float32)
    distance = 1.0 - banks.nearest(cells, product, GENUINE)[0]
    on_product = banks.product_cells(cells, product)
    on_product = np.ones(len(cells), bool) if on_product is None else on_product
    figures = {"worst_all_cells": float(distance.max()), "worst_on_product": float(distance[on_product].max())}
    fake = banks.nearest(cells, product, FAKE) if with_fakes else None
    if fake is not None:
        margin = distance - (1.0 - fake[0])
        figures["fake_margin_on_product"] = float(np.sort(margin[on_product])[-5:].mean())
    return figures


def combined_auc(raw: np.ndarray, local: np.ndarray, is_fake: np.ndarray, keys: list[str], folds: int = 5) -> float:
    """ROC-AUC of a logistic combination of two scores, fit on four fifths of the photographs."""
    groups = sorted(set(keys))
    fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(groups))}
    fold = np.array([fold_of[k] for k in keys])
    z = lambda v: (v - v.mean()) / (v.std() + 1e-9)  # noqa: E731
    design = np.stack([z(raw), z(local), np.ones_like(raw)], axis=1)
    combined = np.zeros(len(raw))
    for k in range(folds):
        w = np.array(fit_logistic(design[fold != k], is_fake[fold != k].astype(float)))
        combined[fold == k] = design[fold == k] @ w
    return roc_auc(is_fake, combined)


def speed(model: Path, gallery_dir: Path, photos: list[str], rounds: int) -> dict:
    """images/s of `knockoff screen` with and without regions, alternated in this one run."""
    timings: dict[str, list[float]] = {"with_regions": [], "without_regions": []}
    judged: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Path(scratch) / "photos.csv"
        manifest.write_text("path\n" + "\n".join(photos) + "\n")
        for _ in range(rounds):
            for name, regions in (("with_regions", True), ("without_regions", False)):
                start = time.perf_counter()
                out = Path(scratch) / f"{name}.parquet"
                screen([str(manifest)], out, model, gallery_dir, ScreenOptions(regions=regions))
                timings[name].append(len(photos) / (time.perf_counter() - start))
                judged[name] = sum(status == SCORED for status in pq.read_table(out, columns=["status"]).column("status").to_pylist())
    medians = {name: float(np.median(values)) for name, values in timings.items()}
    return {"photos": len(photos), "judged": judged["with_regions"], "rounds": rounds, "images_per_s": medians, "runs": timings,
            "ratio_with_to_without": medians["with_regions"] / medians["without_regions"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--queries", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--unmonitored", default="data/prepared/produce-train.parquet")
    parser.add_argument("--speed-rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-local-evidence.json"))
    args = parser.parse_args()

    shipped = Gallery.load(args.index)
    calibration_paths = set()
    if shipped.info.calibration_rows:
        first, end = shipped.info.calibration_rows
        calibration_paths = set(shipped.references.column("path").to_pylist()[first:end])
    gallery = shipped.without_calibration_photos()
    banks = gallery.patches
    patch_model = PatchModel(patches_path(args.model))
    records, pixels, matches = judged_photos(args.model, gallery, args.queries)
    root = data_root()
    portable = [portable_path(r.path, root) for r in records]
    new = np.array([p in calibration_paths for p in portable])
    judged = np.array([s == SCORED for s in matches.status])
    features = np.concatenate([patch_model.features(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
    paths = gallery.references.column("path").to_pylist()
    no_head = dataclasses.replace(banks, objectness={})
    pointing = {"top_region_in_box": [], "without_objectness": [], "random_cell_in_box": []}
    rows = []
    for i, record in enumerate(records):
        boxes = product_boxes(record.path)
        if not judged[i] or not boxes:
            continue
        inside = cells_inside(boxes, banks.grid)
        grid_cells = np.arange(banks.grid ** 2)

        def in_box(regions) -> bool:
            x, y = (regions[0].x0 + regions[0].x1) / 2, (regions[0].y0 + regions[0].y1) / 2
            return any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in boxes)

        product = matches.product[i]
        rows.append({"new": bool(new[i]), "fake": record.authenticity == FAKE, "raw": float(matches.raw[i]),
                     "product": product, "path": portable[i],
                     "nearest_genuine": float(matches.genuine_similarity[i]),
                     "top_region_in_box": in_box(find_regions(features[i], product, banks, paths.__getitem__)),
                     "without_objectness": in_box(find_regions(features[i], product, no_head, paths.__getitem__)),
                     "random_cell_in_box": float(inside[grid_cells].mean()),
                     **local_figures(features[i], product, banks)})
    report: dict = {"cpu": cpu_description(), "model_version": OnnxEmbedder(args.model).info.version,
                    "gallery": shipped.info.version, "queries": args.queries, "pointing_game": {}}
    for name, members in (("new photographs", [r for r in rows if r["new"]]), ("copies", [r for r in rows if not r["new"]])):
        report["pointing_game"][name] = {"judged_photos": len(members),
                                         **{key: float(np.mean([r[key] for r in members])) for key in pointing}}
    new_rows = [r for r in rows if r["new"]]
    is_fake = np.array([r["fake"] for r in new_rows])
    raw = np.array([r["raw"] for r in new_rows])
    keys = [r["path"] for r in new_rows]
    table = {"today's score (raw)": roc_auc(is_fake, raw)}
    for local in ("worst_all_cells", "worst_on_product", "fake_margin_on_product"):
        values = np.array([r[local] for r in new_rows])
        table[local] = roc_auc(is_fake, values)
        table[f"raw + {local}"] = combined_auc(raw, values, is_fake, keys)
    report["local_score_new_photographs"] = {"photos": len(new_rows), "fakes": int(is_fake.sum()), "roc_auc": table}
    cold: dict = {}
    for product in sorted({r["product"] for r in new_rows}):
        mine = [r for r in new_rows if r["product"] == product]
        fake = np.array([r["fake"] for r in mine])
        worst = np.array([r["worst_on_product"] for r in mine])
        nearest = np.array([r["nearest_genuine"] for r in mine])
        cold[product] = {"photos": len(mine), "fakes": int(fake.sum()),
                         "today: 1 - nearest genuine similarity": roc_auc(fake, -nearest),
                         "worst region's distance": roc_auc(fake, worst),
                         "combined": combined_auc(-nearest, worst, fake, [r["path"] for r in mine])}
    report["local_score_cold_start"] = cold
    photos = [r.path for r in records]
    # Regions cost on judged photos only: all sneakers (most judged), and a crawl where, as in a
    # real one, most photos show products nobody monitors (1 sneaker photo in 8, the rest produce).
    crawl = photos[::8] + [r.path for r in read_source(args.unmonitored)][: len(photos) - len(photos[::8])]
    report["speed"] = {"cpu": cpu_description(),
                       "sneakers valid (most photos judged)": speed(args.model, args.index, photos, args.speed_rounds),
                       "crawl (1 photo in 8 a sneaker, the rest produce)": speed(args.model, args.index, crawl, args.speed_rounds)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
