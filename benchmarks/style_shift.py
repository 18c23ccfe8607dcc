"""Photo style must not decide the verdict: screen kinds of photo the gallery's references are not.

Two checks built from shared data:
1. *Catalogue-like sneakers.* Each sneakers `valid` new photograph (no copy of it among the
   references: photograph groups) has its labelled boxes cut out and pasted on a plain white
   640 px canvas, centred, as a studio product shot is; screened with its product claimed.
   Reported beside the same photos as shot: how many are scored, ROC-AUC among scored photos
   per product (an inverted ranking, below 0.5, is what style-driven verdicts look like),
   genuine photos flagged and the precision of flags.
2. *Studio packages against phone photos.* The pipeline's gallery without the studio images,
   built here (its grocery-packages references are phone photos alone, `train`, calibrated on
   `val`), screens the brand's own studio images (`iconic`), all genuine: how many are flagged.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/style_shift.py
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from knockoff.data import portable_path
from knockoff.data.groups import group_keys, read_groups
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import IndexConfig, index
from knockoff.gallery.store import Gallery
from knockoff.params import load_config
from knockoff.runtime.cpu import cpu_description
from knockoff.screening.screen import ScreenOptions, screen

ROOT = Path(os.environ.get("KNOCKOFF_DATA", "data/raw"))
CLASSES = {0: ("nike air force", "fake"), 1: ("nike jordan 1", "fake"), 2: ("nike air force", "genuine"), 3: ("nike jordan 1", "genuine")}


def new_valid_photos(gallery: Gallery, groups: dict[str, int]) -> list[Path]:
    references = gallery.references.column("path").to_pylist()
    held = set(group_keys(references, groups)) | set(references)
    photos = sorted((ROOT / "sneakers/valid/images").glob("*.jpg"))
    return [p for p in photos if group_keys([portable_path(str(p), ROOT)], groups)[0] not in held
            and portable_path(str(p), ROOT) not in held]


def studio_shot(photo: Path, side: int = 640) -> Image.Image | None:
    """The photo's labelled boxes pasted, centred and scaled to 80% of the canvas, on white."""
    label = Path(str(photo).replace("/images/", "/labels/")).with_suffix(".txt")
    boxes = [list(map(float, line.split()[1:])) for line in label.read_text().splitlines() if line.strip()]
    if not boxes:
        return None
    image = Image.open(photo).convert("RGB")
    width, height = image.size
    left = min(x - w / 2 for x, _, w, _ in boxes) * width
    right = max(x + w / 2 for x, _, w, _ in boxes) * width
    top = min(y - h / 2 for _, y, _, h in boxes) * height
    bottom = max(y + h / 2 for _, y, _, h in boxes) * height
    product = image.crop((int(max(left, 0)), int(max(top, 0)), int(min(right, width)), int(min(bottom, height))))
    scale = 0.8 * side / max(product.size)
    product = product.resize((max(1, int(product.width * scale)), max(1, int(product.height * scale))), Image.BICUBIC)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(product, ((side - product.width) // 2, (side - product.height) // 2))
    return canvas


def label_of(photo: Path) -> tuple[str, str]:
    label = Path(str(photo).replace("/images/", "/labels/")).with_suffix(".txt")
    return CLASSES[int(label.read_text().split()[0])]


def summary(rows: list[dict], truth: dict[str, tuple[str, str]]) -> dict:
    report = {"photos": len(rows), "status": {}}
    for row in rows:
        report["status"][row["status"]] = report["status"].get(row["status"], 0) + 1
    scored = [r for r in rows if r["status"] == "scored"]
    flagged = [r for r in rows if r["flagged"]]
    genuine = [r for r in rows if truth[r["path"]][1] == "genuine"]
    report["genuine_flagged"] = sum(bool(r["flagged"]) for r in genuine) / max(len(genuine), 1)
    report["flags"] = len(flagged)
    report["flag_precision"] = (sum(truth[r["path"]][1] == "fake" for r in flagged) / len(flagged)) if flagged else None
    report["roc_auc_scored"] = {}
    for product in sorted({truth[r["path"]][0] for r in scored}):
        mine = [r for r in scored if truth[r["path"]][0] == product]
        is_fake = np.array([truth[r["path"]][1] == "fake" for r in mine])
        if 0 < is_fake.sum() < len(is_fake):
            report["roc_auc_scored"][product] = round(roc_auc(is_fake, np.array([r["score"] for r in mine])), 3)
    return report


def catalogue_like(model: Path, gallery_path: Path, groups: dict[str, int], scratch: Path) -> dict:
    # The gallery as calibrated: the shipped one also holds `valid`'s new photographs, added
    # after calibrating on them, and copies of them would find themselves.
    shipped = Gallery.load(gallery_path)
    gallery_path = scratch / "as-calibrated"
    shipped.without_calibration_photos().save(gallery_path)
    copies = set(shipped.info.excluded_copies)  # copies of a reference `knockoff index` found that the groups missed
    photos = [p for p in new_valid_photos(Gallery.load(gallery_path), groups) if portable_path(str(p), ROOT) not in copies]
    truth, shot_rows, studio_rows = {}, [], []
    for photo in photos:
        studio = studio_shot(photo)
        if studio is None:
            continue
        product, authenticity = label_of(photo)
        path = scratch / f"studio-{photo.name}"
        studio.save(path, quality=92)
        truth[str(photo)] = truth[str(path)] = (product, authenticity)
        shot_rows.append(f"{photo},{product}\n")
        studio_rows.append(f"{path},{product}\n")
    results = {}
    for name, lines in (("as shot", shot_rows), ("catalogue-like", studio_rows)):
        manifest = scratch / f"{name}.csv"
        manifest.write_text("path,product\n" + "".join(lines))
        screen([str(manifest)], scratch / f"{name}.parquet", model, gallery_path, ScreenOptions())
        results[name] = summary(pq.read_table(scratch / f"{name}.parquet").to_pylist(), truth)
    return results


def studio_packages(model: Path, scratch: Path) -> dict:
    # The pipeline's gallery (params.yaml `index`) without the studio images: the packages'
    # references are phone photos only. (The sneakers stay: a gallery of genuine photos alone
    # has no fakes to calibrate on, and `knockoff index` refuses it.)
    config = load_config(IndexConfig, "index")
    config = replace(config, references=tuple(r for r in config.references if "iconic" not in r))
    index(config, model, scratch / "phone-gallery")
    manifest = scratch / "iconic.csv"
    iconic = sorted((ROOT / "grocery-packages/iconic-images-and-descriptions").rglob("*.jpg"))
    manifest.write_text("path\n" + "".join(f"{p}\n" for p in iconic))
    screen([str(manifest)], scratch / "iconic.parquet", model, scratch / "phone-gallery", ScreenOptions())
    rows = pq.read_table(scratch / "iconic.parquet").to_pylist()
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    return {"photos": len(rows), "status": statuses, "flagged": sum(bool(r["flagged"]) for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--gallery", type=Path, default=Path("models/gallery"))
    parser.add_argument("--groups", type=Path, default=Path("data/groups.parquet"))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-style-shift.json"))
    args = parser.parse_args()
    groups = read_groups(args.groups)
    with tempfile.TemporaryDirectory(prefix="knockoff-style-") as scratch:
        report = {"cpu": cpu_description(),
                  "catalogue_like_sneakers": catalogue_like(args.model, args.gallery, groups, Path(scratch)),
                  "studio_packages_against_phone_photos": studio_packages(args.model, Path(scratch))}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
