"""The copy verdict `knockoff screen` gives by default, from the shipped gallery alone: how
often it is right, and what it costs.

The set (seeded): `--references` gallery references (sneakers `train`, half known fakes),
each edited seven ways (benchmarks/copies.py: crop, halved, JPEG 35, mirrored, watermark,
caption bar, all at once): copies whose reference is known. Negatives: every sneakers
`valid` photo whose photograph the gallery does not hold, new photographs of the same shoes
(photograph groups, `knockoff groups`; the shipped gallery holds `valid`'s new photographs
after calibrating on them, so none may be left), and grocery-produce `val` photos. `valid`
photos that `knockoff index` found to copy a reference (its model's candidates, verified)
while the groups did not are reported apart: copies the groups missed. The screening runs
without KNOCKOFF_DATA pointing anywhere: the check reads only what the gallery keeps.

Reports: recall per edit (the photo is called a copy of a reference of its photograph, and a
copy of a fake is flagged), copy verdicts on new photographs (false copies), and the cost:
the same set screened with and without the check, interleaved over `--rounds` (median of
the per-round ratios of images/s), with the CPU time per photo.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/copy_check.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from copies import EDITS  # noqa: E402

from knockoff.data import portable_path  # noqa: E402
from knockoff.data.groups import group_keys, read_groups  # noqa: E402
from knockoff.gallery.store import Gallery  # noqa: E402
from knockoff.runtime.cpu import cpu_description  # noqa: E402
from knockoff.screening.screen import ScreenOptions, screen  # noqa: E402

ROOT = Path(os.environ.get("KNOCKOFF_DATA", "data/raw"))


def build_set(gallery: Gallery, groups: dict[str, int], count: int, folder: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    references = gallery.references.to_pylist()
    sneakers = [r for r in references if r["path"].startswith("sneakers/train/")]
    chosen = rng.sample(sneakers, count)
    rows = []
    for number, reference in enumerate(chosen):
        image = Image.open(ROOT / reference["path"]).convert("RGB")
        for edit, make in EDITS.items():
            path = folder / f"{number}-{edit.replace(' ', '-')}.jpg"
            path.write_bytes(make(image))
            rows.append({"path": str(path), "kind": f"copy: {edit}", "of": reference["path"],
                         "authenticity": reference["authenticity"]})
    held = set(gallery.references.column("path").to_pylist())
    reference_keys = set(group_keys(list(held), groups))
    valid = sorted((ROOT / "sneakers/valid/images").glob("*.jpg"))
    excluded = set(gallery.info.excluded_copies)  # copies `knockoff index` found that the groups missed
    for path in valid:
        key = group_keys([portable_path(str(path), ROOT)], groups)[0]
        if portable_path(str(path), ROOT) not in held and key not in reference_keys:
            kind = "copy found by the index, not by the groups" if portable_path(str(path), ROOT) in excluded else "new photograph"
            rows.append({"path": str(path), "kind": kind, "of": None, "authenticity": None})
    for path in sorted((ROOT / "grocery-produce/val").rglob("*.jpg")):
        rows.append({"path": str(path), "kind": "unmonitored", "of": None, "authenticity": None})
    return rows


def timed_screen(manifest: Path, out: Path, model: Path, gallery: Path, copy_check: bool) -> tuple[float, float]:
    """(images/s, CPU ms per photo) of one screening, with the data root pointing nowhere."""
    rows = sum(1 for _ in manifest.open()) - 1
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    screen([str(manifest)], out, model, gallery, ScreenOptions(copy_check=copy_check))
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return rows / elapsed, 1000 * cpu / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--gallery", type=Path, default=Path("models/gallery"))
    parser.add_argument("--groups", type=Path, default=Path("data/groups.parquet"))
    parser.add_argument("--references", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-copy-check.json"))
    args = parser.parse_args()
    gallery = Gallery.load(args.gallery)
    if gallery.reference_copies is None:
        raise SystemExit(f"gallery {args.gallery} keeps no thumbnails: rebuild it with `knockoff index`")
    groups = read_groups(args.groups)
    with tempfile.TemporaryDirectory(prefix="knockoff-copy-check-") as scratch:
        scratch = Path(scratch)
        # The gallery as calibrated: the shipped one also holds `valid`'s new photographs (added
        # after calibrating on them), which would leave no new photograph to test false copies on.
        excluded_copies = gallery.info.excluded_copies
        gallery = gallery.without_calibration_photos()
        gallery.info.excluded_copies = excluded_copies
        gallery_path = scratch / "as-calibrated"
        gallery.save(gallery_path)
        rows = build_set(gallery, groups, args.references, scratch, args.seed)
        manifest = scratch / "set.csv"
        manifest.write_text("path\n" + "".join(f"{r['path']}\n" for r in rows))
        os.environ["KNOCKOFF_DATA"] = str(scratch / "nowhere")  # the check may read only the gallery
        timings = {True: [], False: []}
        for _ in range(args.rounds):
            for copy_check in (True, False):
                timings[copy_check].append(timed_screen(manifest, scratch / f"out-{copy_check}.parquet", args.model,
                                                        gallery_path, copy_check))
        results = {Path(r["path"]).name: r for r in pq.read_table(scratch / "out-True.parquet").to_pylist()}
    reference_keys = dict(zip(gallery.references.column("path").to_pylist(),
                              group_keys(gallery.references.column("path").to_pylist(), groups)))
    by_kind: dict[str, dict] = {}
    for row in rows:
        found = results[Path(row["path"]).name]
        entry = by_kind.setdefault(row["kind"], {"photos": 0, "called_copies": 0, "right_photograph": 0, "fakes_flagged": 0,
                                                 "fakes": 0, "genuine_flagged": 0, "genuine": 0})
        entry["photos"] += 1
        copied = found["reference_copy"]
        entry["called_copies"] += copied is not None
        if row["of"] is not None:
            entry["right_photograph"] += copied is not None and reference_keys.get(copied) == reference_keys.get(row["of"])
            side = "fakes" if row["authenticity"] == "fake" else "genuine"
            entry[side] += 1
            entry[f"{side}_flagged" if side == "fakes" else "genuine_flagged"] += bool(found["flagged"]) and copied is not None
    ratios = [with_ / without for (with_, _), (without, _) in zip(timings[True], timings[False])]
    report = {
        "cpu": cpu_description(),
        "gallery": gallery.info.version,
        "copy_similarity": gallery.info.copies.similarity,
        "by_kind": by_kind,
        "images_per_s_with_check": [round(r, 1) for r, _ in timings[True]],
        "images_per_s_without_check": [round(r, 1) for r, _ in timings[False]],
        "ratio_with_to_without_median": round(statistics.median(ratios), 3),
        "cpu_ms_per_photo_with_check": round(statistics.median(c for _, c in timings[True]), 2),
        "cpu_ms_per_photo_without_check": round(statistics.median(c for _, c in timings[False]), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
