"""Listing and seller verdicts on a simulated marketplace (knockoff/listings/marketplace.py).

Builds the marketplace (seeded) from held-out photos — sneakers `valid`, grocery-packages
`val`, grocery-produce `val` — writes its manifest (listing_id, seller_id, path, label),
then runs what a user runs: `knockoff screen`, `knockoff listings`, `knockoff sellers`.
Reports listing precision and recall of `flagged`, and the seller ranking: ROC-AUC of risk
for counterfeit sellers and precision among the top-k (k = the number of counterfeit
sellers), beside a naive ranking by each seller's share of flagged photos.

Caveat: sneakers `valid` and grocery `val` are also the gallery's calibration photos, so the
per-product thresholds were fit on these very photos (the open-world report cross-fits for
that reason); the hidden marketplace is built from photos nothing was fit on.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/marketplace.py --seed 0
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from knockoff.data import read_source
from knockoff.listings import write_listings, write_sellers
from knockoff.listings.marketplace import listing_truth, pools, seller_truth, simulate
from knockoff.metrics import roc_auc
from knockoff.screen import ScreenOptions, screen


def precision_at_k(truth: np.ndarray, scores: np.ndarray, k: int) -> float:
    order = np.argsort(-scores, kind="stable")[:k]
    return float(truth[order].mean()) if k else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sneakers", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--grocery", default="data/prepared/grocery-val.parquet")
    parser.add_argument("--unmonitored", default="data/prepared/produce-val.parquet")
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-marketplace.json"))
    args = parser.parse_args()

    photo_pools = pools(list(read_source(args.sneakers)), list(read_source(args.grocery)), list(read_source(args.unmonitored)))
    rows = simulate(photo_pools, args.seed)
    sellers_truth, listings_truth = seller_truth(rows), listing_truth(rows)
    scratch = Path(tempfile.mkdtemp(prefix="knockoff-marketplace-"))
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
    listing_figures = {
        "listings": len(listings), "fake_listings": true_fakes, "flagged": len(flagged),
        "precision": sum(listings_truth[r["listing_id"]] for r in flagged) / max(len(flagged), 1),
        "recall": sum(listings_truth[r["listing_id"]] for r in flagged) / max(true_fakes, 1),
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
    args.out.write_text(json.dumps({"seed": args.seed, "photos": len(rows), "listings": listing_figures,
                                    "sellers": seller_figures, "missed_in_top_k": missed}, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
