"""Listing and seller verdicts on a simulated marketplace (knockoff/listings/marketplace.py).

Builds the marketplace (seeded) from held-out photos — sneakers `valid`, grocery-packages
`val`, grocery-produce `val` — writes its manifest (listing_id, seller_id, path, label),
then runs what a user runs: `knockoff screen`, `knockoff listings`, `knockoff sellers`.
Reports listing precision and recall of `flagged` (calibrated at listing level; beside it
the rule it replaced, a listing flagged when any photo is), the run's estimated share of
fakes per product beside the true one, and the seller ranking: ROC-AUC of risk
for counterfeit sellers and precision among the top-k (k = the number of counterfeit
sellers), beside a naive ranking by each seller's share of flagged photos.

Sneakers `valid` and grocery `val` are also the gallery's calibration photos, so by default
the per-product thresholds, photo and listing alike, were fit on these very photos. With
`--cross-fit` the gallery's open-world and listing calibrations are refit on a random half
of them (a copy of the gallery in a scratch folder) and the marketplace is built from the
other half only, photos nothing was fit on, as the hidden marketplace is.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/marketplace.py --seed 0
    KNOCKOFF_DATA=../shared/datasets python benchmarks/marketplace.py --seed 0 --cross-fit \
        --out reports/benchmark-marketplace-crossfit.json
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from knockoff.data import read_source
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import IndexConfig, fit_calibrations, split_unmonitored
from knockoff.gallery.store import Gallery
from knockoff.listings import write_listings, write_sellers
from knockoff.listings.marketplace import listing_truth, pools, seller_truth, simulate
from knockoff.runtime.embedding import OnnxEmbedder, embed_records
from knockoff.screening.screen import ScreenOptions, screen


def precision_at_k(truth: np.ndarray, scores: np.ndarray, k: int) -> float:
    order = np.argsort(-scores, kind="stable")[:k]
    return float(truth[order].mean()) if k else float("nan")


def _true_shares(photos: list[dict]) -> dict[str, float]:
    """Per judged product, the share of the run's judged photos that are fakes (what listing
    calibration estimates without labels)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for photo in photos:
        if photo["status"] == "scored":
            counts[photo["product"]][0] += photo["label"] == "fake"
            counts[photo["product"]][1] += 1
    return {product: round(fakes / total, 4) for product, (fakes, total) in sorted(counts.items())}


def cross_fitted_gallery(model: Path, gallery_dir: Path, calibration_photos: list, unmonitored_spec: str, seed: int,
                         out_dir: Path) -> set[str]:
    """Writes to `out_dir` a copy of the gallery whose open-world and listing calibrations are
    refit on a random half of `calibration_photos`; returns the paths of the other half."""
    embedder = OnnxEmbedder(model)
    gallery = Gallery.load(gallery_dir, model=embedder.info)
    vectors, kept, _ = embed_records(embedder, calibration_photos, 32, 2, "calibration photos")
    order = np.random.default_rng(seed).permutation(len(kept))
    fit, judge = np.sort(order[: len(kept) // 2]), np.sort(order[len(kept) // 2:])
    _, held_unmonitored = split_unmonitored(list(read_source(unmonitored_spec)))
    unmonitored_vectors, _, _ = embed_records(embedder, held_unmonitored, 32, 2, "unmonitored held back")
    references = gallery.index.reconstruct_n(0, gallery.index.ntotal)
    config = IndexConfig(target_precision=gallery.info.calibration.target_precision, open_world=gallery.info.open_world.params)
    fit_photos = [kept[i] for i in fit]
    world, held_back_scores = fit_calibrations(gallery, references, vectors[fit], fit_photos, unmonitored_vectors, config)
    gallery.info.open_world, gallery.info.held_back_scores = world, asdict(held_back_scores)
    gallery.save(out_dir)
    return {kept[i].path for i in judge}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sneakers", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--grocery", default="data/prepared/grocery-val.parquet")
    parser.add_argument("--unmonitored", default="data/prepared/produce-val.parquet")
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--unmonitored-references", default="data/prepared/produce-train.parquet",
                        help="the gallery's unmonitored photos (their held-back half sets the no-match threshold)")
    parser.add_argument("--cross-fit", action="store_true", help="refit the calibrations on half the photos, judge the other half")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-marketplace.json"))
    args = parser.parse_args()

    sneakers, grocery = list(read_source(args.sneakers)), list(read_source(args.grocery))
    scratch = Path(tempfile.mkdtemp(prefix="knockoff-marketplace-"))
    if args.cross_fit:
        unseen = cross_fitted_gallery(args.model, args.index, sneakers + grocery, args.unmonitored_references, args.seed,
                                      scratch / "gallery")
        sneakers, grocery = [r for r in sneakers if r.path in unseen], [r for r in grocery if r.path in unseen]
        args.index = scratch / "gallery"
        print(f"cross-fitted: calibrations refit on half the photos; the marketplace draws on the other "
              f"{len(sneakers)} sneaker and {len(grocery)} grocery photos")
    photo_pools = pools(sneakers, grocery, list(read_source(args.unmonitored)))
    rows = simulate(photo_pools, args.seed)
    sellers_truth, listings_truth = seller_truth(rows), listing_truth(rows)
    manifest = scratch / "marketplace.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["listing_id", "seller_id", "path", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "path": str(Path(row["path"]).resolve())} for row in rows)
    print(f"marketplace (seed {args.seed}): {len(rows)} photos, {len(listings_truth)} listings "
          f"({sum(listings_truth.values())} fake), {len(sellers_truth)} sellers ({sum(sellers_truth.values())} counterfeit)")

    started = time.perf_counter()
    results = scratch / "results.parquet"
    screen([str(manifest)], results, args.model, args.index, ScreenOptions())
    listings_summary = write_listings(results, scratch / "listings.parquet")
    sellers = write_sellers(results, scratch / "sellers.parquet")
    print(f"screen + listings + sellers: {time.perf_counter() - started:.1f} s; {listings_summary.line(scratch / 'listings.parquet')}")

    listings = pq.read_table(scratch / "listings.parquet").to_pylist()
    flagged = [row for row in listings if row["flagged"]]
    true_fakes = sum(listings_truth.values())
    any_photo_flagged = [row for row in listings if row["flagged_photos"]]  # the rule before listing calibration
    judged_photos = pq.read_table(results, columns=["status", "product", "label"]).to_pylist()
    listing_figures = {
        "listings": len(listings), "fake_listings": true_fakes, "flagged": len(flagged),
        "precision": sum(listings_truth[r["listing_id"]] for r in flagged) / max(len(flagged), 1),
        "recall": sum(listings_truth[r["listing_id"]] for r in flagged) / max(true_fakes, 1),
        "any_photo_flagged": {
            "flagged": len(any_photo_flagged),
            "precision": sum(listings_truth[r["listing_id"]] for r in any_photo_flagged) / max(len(any_photo_flagged), 1),
            "recall": sum(listings_truth[r["listing_id"]] for r in any_photo_flagged) / max(true_fakes, 1)},
        "calibration": listings_summary.calibration,
        "true_share_of_fakes_among_judged_photos": _true_shares(judged_photos),
        "status": {s: sum(r["status"] == s for r in listings) for s in ("scored", "unsupported", "no_match", "error")},
    }
    photo_rows = pq.read_table(results, columns=["seller_id", "flagged"]).to_pylist()
    share: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in photo_rows:
        share[row["seller_id"]][0] += bool(row["flagged"])
        share[row["seller_id"]][1] += 1
    ids = [row["seller_id"] for row in sellers.to_pylist()]
    truth = np.array([sellers_truth[s] for s in ids])
    risk = np.array(sellers.column("risk").to_pylist())
    naive = np.array([share[s][0] / share[s][1] for s in ids])
    k = int(truth.sum())
    seller_figures = {
        "sellers": len(ids), "counterfeit_sellers": k,
        "risk_roc_auc": roc_auc(truth, risk), "risk_precision_at_k": precision_at_k(truth, risk, k),
        "naive_share_roc_auc": roc_auc(truth, naive), "naive_share_precision_at_k": precision_at_k(truth, naive, k),
    }
    print(json.dumps({"listings": listing_figures, "sellers": seller_figures}, indent=2))
    missed = [s for s in ids[k:] if sellers_truth[s]]
    print(f"counterfeit sellers outside the top {k}: {missed}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seed": args.seed, "cross_fitted": args.cross_fit, "photos": len(rows), "listings": listing_figures,
                                    "sellers": seller_figures, "missed_in_top_k": missed}, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
