"""Listing and seller verdicts on a simulated marketplace (knockoff/listings/marketplace.py).

Builds the marketplace (seeded) from held-out photos — sneakers `valid`, grocery-packages
`val`, grocery-produce `val` — writes its manifest (listing_id, seller_id, path, label),
then runs what a user runs: `knockoff screen`, `knockoff listings`, `knockoff sellers`.
Reports listing precision and recall of `flagged` (calibrated at listing level; beside it
the rule it replaced, a listing flagged when any photo is), the run's estimated share of
fakes per product beside the true one, and the seller ranking: ROC-AUC of risk
for counterfeit sellers and precision among the top-k (k = the number of counterfeit
sellers), beside a naive ranking by each seller's share of flagged photos.

The brand's catalogue (knockoff/data/catalogue.py) comes with it: both sneakers at a retail
price, four studio shots of genuine `train` photos of each (cut out on white, as
benchmarks/style_shift.py makes them) as the brand's official photos (resellers reuse them;
some counterfeit shops steal them), replica shops' studio shots of fakes made alike, half the resellers as authorised sellers, and a
rates table for the sellers who price in EUR; it joins a copy of the gallery with
`add_catalogue`, as `knockoff index add --catalogue` does. The signals' likelihood ratios
(knockoff/listings/signals.py) are cross-fit by seller: the sellers are dealt into two folds
(each archetype alternately), ratios are fit on the labelled listings of one fold and judge
the sellers of the other, in turn, and every seller's risk comes from ratios not fit on it.
Each signal is measured alone and together (the others' ratios set to 1). Most of
sneakers `valid` copies a `train` photo (a copy of a known fake is flagged as one): with
`--photographs new` the marketplace draws only on new photographs (the headline), with
`--photographs copies` only on copies (recall of training photos, reported apart). With
`--studio-fakes` every fake listing shows studio shots only, as replica sellers' catalogues
do: photos that judge weakly, where the signals must carry the verdict. `--signals-out`
writes the ratios fit on every labelled listing: what `knockoff screen` ships (DVC stage
`signals`).

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
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.data import data_root, portable_path, read_source
from knockoff.data.catalogue import read_catalogue
from knockoff.data.groups import group_keys, read_groups
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import (
    IndexConfig,
    add_catalogue,
    fit_calibrations,
    split_unmonitored,
)
from knockoff.gallery.store import Gallery
from knockoff.listings import write_listings, write_sellers
from knockoff.listings.marketplace import (
    RATES,
    RETAIL,
    authorised_sellers,
    listing_truth,
    pools,
    seller_truth,
    simulate,
)
from knockoff.listings.signals import (
    DEFAULT_STRENGTH,
    SIGNALS,
    SignalRatios,
    labelled_listings,
)
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
    # as calibrated: the calibration photos that joined as references afterwards would be found as copies
    gallery = Gallery.load(gallery_dir, model=embedder.info).without_calibration_photos()
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


FOLDS = 2
TOP = 15  # the "precision among the top-ranked 15"
VARIANTS = {"photos only": (), "photos + price": ("price",), "photos + reuse": ("reuse",), "photos + price + reuse": ("price", "reuse")}


def studio_shots(records: list, folder: Path) -> list:
    """Each photo's labelled product cut out on white (benchmarks/style_shift.py), as a studio
    shot is: the records of the shots written to `folder` (photos without boxes are left out)."""
    from dataclasses import replace

    from style_shift import studio_shot

    folder.mkdir(parents=True, exist_ok=True)
    shots = []
    for record in records:
        shot = studio_shot(Path(record.path))
        if shot is not None:
            path = folder / f"studio-{Path(record.path).stem}.jpg"
            shot.save(path, quality=92)
            shots.append(replace(record, path=str(path)))
    return shots


def official_photos(train: list, per_product: int, seed: int, folder: Path) -> dict[str, list[str]]:
    """Product -> `per_product` studio shots of genuine `train` photos: the brand's official photos."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[str]] = {}
    for product in sorted(RETAIL):
        genuine = sorted((r for r in train if r.product == product and r.authenticity == "genuine"), key=lambda r: r.path)
        picked = [genuine[i] for i in rng.choice(len(genuine), per_product * 2, replace=False)]
        chosen[product] = [shot.path for shot in studio_shots(picked, folder)][:per_product]
    return chosen


def write_catalogue(folder: Path, photos: dict[str, list[str]], authorised: list[str]) -> tuple[Path, Path]:
    """The simulated brand's catalogue CSV and rates table."""
    catalogue, rates = folder / "catalogue.csv", folder / "rates.csv"
    with catalogue.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["product", "brand", "retail_price", "currency", "official_photos", "authorised_sellers"])
        for product, price in sorted(RETAIL.items()):
            writer.writerow([product, "nike", price, "USD", ";".join(str(Path(p).resolve()) for p in photos[product]),
                             ";".join(authorised)])
    rates.write_text("currency,rate\n" + "".join(f"{c},{r}\n" for c, r in RATES.items()))
    return catalogue, rates


def folds_of(rows: list[dict]) -> dict[str, int]:
    """Seller -> fold, each archetype's sellers dealt alternately."""
    sellers = sorted({(r["seller_kind"], r["seller_id"]) for r in rows})
    return {seller: number % FOLDS for number, (_, seller) in enumerate(sellers)}


def seller_figures(ids: list[str], risk: np.ndarray, truth_of: dict[str, bool]) -> dict:
    truth = np.array([truth_of[s] for s in ids])
    k = int(truth.sum())
    return {"roc_auc": roc_auc(truth, risk), "precision_at_k": precision_at_k(truth, risk, k),
            f"precision_at_{TOP}": precision_at_k(truth, risk, TOP), "k": k}


def listing_flags(listings: list[dict], truth: dict[str, bool]) -> dict:
    flagged = [row for row in listings if row["flagged"]]
    fakes = sum(truth.values())
    hits = sum(truth[r["listing_id"]] for r in flagged)
    return {"flagged": len(flagged), "precision": hits / max(len(flagged), 1), "recall": hits / max(fakes, 1)}


def cross_fit(results: Path, scratch: Path, rows: list[dict], table: pa.Table, signals: tuple[str, ...],
              strength: float) -> tuple[dict, dict]:
    """Each fold's sellers judged with ratios fit on the other folds' labelled listings of
    `table` (the run's listings with every ratio 1): (seller -> risk, listing rows), pooled over the folds."""
    fold = folds_of(rows)
    listing_fold = np.array([fold.get(s, 0) for s in table.column("seller_id").to_pylist()])
    risk: dict[str, float] = {}
    listings: list[dict] = []
    for number in range(FOLDS):
        bands, fake, unjudged = labelled_listings(table, listing_fold != number)
        ratios = SignalRatios.neutral(strength).refit(bands, fake, f"simulated marketplace, folds other than {number}",
                                                      unjudged=unjudged).only(signals)
        sellers = write_sellers(results, scratch / "sellers.parquet", listings_out=scratch / "listings.parquet", ratios=ratios)
        risk.update({s: r for s, r in zip(sellers.column("seller_id").to_pylist(), sellers.column("risk").to_pylist())
                     if fold.get(s) == number})
        listings += [row for row in pq.read_table(scratch / "listings.parquet").to_pylist() if fold.get(row["seller_id"]) == number]
    return risk, listings


def photographs_of(records: list, gallery_dir: Path, groups_path: Path, which: str) -> list:
    """The records that are new photographs (no copy of them among the gallery's references, as
    calibrated), or copies of one, or all: what a figure over them measures."""
    if which == "all":
        return records
    gallery = Gallery.load(gallery_dir).without_calibration_photos()
    groups = read_groups(groups_path)
    references = set(group_keys(gallery.references.column("path").to_pylist(), groups))
    copies = set(gallery.info.excluded_copies)
    paths = [portable_path(r.path, data_root()) for r in records]
    new = [key not in references and path not in copies for key, path in zip(group_keys(paths, groups), paths)]
    return [r for r, is_new in zip(records, new) if is_new == (which == "new")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sneakers", default="data/prepared/sneakers-valid.parquet")
    parser.add_argument("--sneakers-train", default="data/prepared/sneakers-train.parquet",
                        help="where the simulated brand's official photos are drawn from (gallery references)")
    parser.add_argument("--grocery", default="data/prepared/grocery-val.parquet")
    parser.add_argument("--unmonitored", default="data/prepared/produce-val.parquet")
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--unmonitored-references", default="data/prepared/produce-train.parquet",
                        help="the gallery's unmonitored photos (their held-back half sets the no-match threshold)")
    parser.add_argument("--cross-fit", action="store_true", help="refit the calibrations on half the photos, judge the other half")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, help="the signal ratios' prior, in pseudo-listings per class")
    parser.add_argument("--signals-out", type=Path, help="write the signal ratios fit on every labelled listing here")
    parser.add_argument("--photographs", choices=("all", "new", "copies"), default="all",
                        help="the held-out photos the marketplace draws on: all, new photographs only (no copy of them "
                             "among the gallery's references: the headline), or copies of a reference only")
    parser.add_argument("--groups", type=Path, default=Path("data/groups.parquet"), help="photograph groups (`knockoff groups`)")
    parser.add_argument("--studio-fakes", action="store_true",
                        help="every fake listing shows studio shots only (the fakes cut out on white): photos that judge weakly")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-marketplace.json"))
    args = parser.parse_args()

    sneakers = photographs_of(list(read_source(args.sneakers)), args.index, args.groups, args.photographs)
    # grocery `val` copies no reference: its photos stand as they are beside copies of sneakers
    grocery = photographs_of(list(read_source(args.grocery)), args.index, args.groups, "new" if args.photographs == "new" else "all")
    print(f"{args.photographs} photographs: {len(sneakers)} sneaker and {len(grocery)} grocery photos")
    scratch = Path(tempfile.mkdtemp(prefix="knockoff-marketplace-"))
    if args.cross_fit:
        unseen = cross_fitted_gallery(args.model, args.index, sneakers + grocery, args.unmonitored_references, args.seed,
                                      scratch / "gallery")
        sneakers, grocery = [r for r in sneakers if r.path in unseen], [r for r in grocery if r.path in unseen]
        print(f"cross-fitted: calibrations refit on half the photos; the marketplace draws on the other "
              f"{len(sneakers)} sneaker and {len(grocery)} grocery photos")
    else:  # as calibrated, without the calibration photos that joined as references (they would be found as copies)
        Gallery.load(args.index).without_calibration_photos().save(scratch / "gallery")
    args.index = scratch / "gallery"
    official = official_photos(list(read_source(args.sneakers_train)), 4, args.seed, scratch / "official")
    catalogue_path, rates_path = write_catalogue(scratch, official, authorised_sellers())
    added = add_catalogue(args.model, args.index, read_catalogue(catalogue_path, rates_path))
    print(f"catalogue: {sum(map(len, official.values()))} official photos (studio shots of genuine `train` photos), "
          f"{added.added} added as references")
    studio = studio_shots([r for r in sneakers if r.authenticity == "fake"], scratch / "replica-studio")
    photo_pools = pools(sneakers, grocery, list(read_source(args.unmonitored)), studio)
    if args.studio_fakes:
        photo_pools["sneakers-fake"] = photo_pools["sneakers-fake-studio"]
    rows = simulate(photo_pools, args.seed, official_photos=official)
    sellers_truth, listings_truth = seller_truth(rows), listing_truth(rows)
    manifest = scratch / "marketplace.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["listing_id", "seller_id", "title", "price", "currency", "path", "label"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "path": str(Path(row["path"]).resolve())} for row in rows)
    print(f"marketplace (seed {args.seed}): {len(rows)} photos, {len(listings_truth)} listings "
          f"({sum(listings_truth.values())} fake), {len(sellers_truth)} sellers ({sum(sellers_truth.values())} counterfeit)")

    started = time.perf_counter()
    results = scratch / "results.parquet"
    screen([str(manifest)], results, args.model, args.index, ScreenOptions())
    print(f"screen: {time.perf_counter() - started:.1f} s")

    summary = write_listings(results, scratch / "listings-neutral.parquet", ratios=SignalRatios.neutral())
    neutral = pq.read_table(scratch / "listings-neutral.parquet")
    figures: dict[str, dict] = {}
    for name, signals in VARIANTS.items():
        risk, listings = cross_fit(results, scratch, rows, neutral, signals, args.strength)
        ids = sorted(risk)
        figures[name] = {"sellers": seller_figures(ids, np.array([risk[s] for s in ids]), sellers_truth),
                         "listings": listing_flags(listings, listings_truth)}
        print(f"{name}: sellers {json.dumps(figures[name]['sellers'])}; listings {json.dumps(figures[name]['listings'])}")
    photo_rows = pq.read_table(results, columns=["seller_id", "flagged"]).to_pylist()
    share: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in photo_rows:
        share[row["seller_id"]][0] += bool(row["flagged"])
        share[row["seller_id"]][1] += 1
    ids = sorted(share)
    figures["naive share of flagged photos"] = {"sellers": seller_figures(ids, np.array([share[s][0] / share[s][1] for s in ids]),
                                                                          sellers_truth)}
    print(f"naive: {json.dumps(figures['naive share of flagged photos'])}")

    judged_photos = pq.read_table(results, columns=["status", "product", "label"]).to_pylist()
    bands, fake, unjudged = labelled_listings(neutral)
    fitted = SignalRatios.neutral(args.strength).refit(bands, fake, f"the simulated marketplace (benchmarks/marketplace.py, seed {args.seed})",
                                                       unjudged=unjudged)
    ratios = {signal: {band: round(float(r), 3) for band, r in zip(SIGNALS[signal], fitted.ratio(signal, np.arange(len(SIGNALS[signal]))))}
              for signal in SIGNALS}
    print(f"ratios fit on every labelled listing: {json.dumps(ratios)}; prior of listings with no photo judged "
          f"{fitted.unjudged_prior} ({fitted.unjudged_listings} listings)")
    if args.signals_out:
        args.signals_out.parent.mkdir(parents=True, exist_ok=True)
        args.signals_out.write_text(fitted.to_json())
        print(f"-> {args.signals_out}")
    report = {"seed": args.seed, "cross_fitted": args.cross_fit, "photographs": args.photographs, "studio_fakes": args.studio_fakes, "photos": len(rows), "listings": len(listings_truth),
              "fake_listings": sum(listings_truth.values()), "sellers": len(sellers_truth),
              "counterfeit_sellers": sum(sellers_truth.values()), "folds": FOLDS, "strength": args.strength,
              "variants": figures, "ratios_fit_on_every_listing": ratios,
              "listing_calibration": summary.calibration,
              "true_share_of_fakes_among_judged_photos": _true_shares(judged_photos),
              "status": {s: sum(r == s for r in neutral.column("status").to_pylist()) for s in
                         ("scored", "unsupported", "copy", "no_match", "error")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
