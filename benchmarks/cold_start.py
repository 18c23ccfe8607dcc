"""Cold start, leave one product out: how well Knockoff judges a product whose fakes it never saw.

For one sneaker model P: its known fakes are removed from everything — the training photos,
the validation photos that pick the best epoch, the gallery, the calibration — then a model is
trained and exported and a gallery built as the pipeline would (params.yaml), so P has
genuine references only and is judged by the cold-start score (knockoff/scoring/open_world.py).
P's held-back genuine photos (sneakers `valid`) are split in two: one half calibrates the
cold-start threshold, the other half and all of P's `valid` fakes measure it:
- ROC-AUC of P's fakes against P's genuine photos, by the cold-start distance;
- the share of P's fakes flagged, at the threshold that flags at most `--false-flag-rate`
  (2%) of held-back genuine photos, and the share of the measured genuine photos flagged.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/cold_start.py --product "nike jordan 1"
    (needs the [train] extra and the prepared manifests of `dvc repro` / `knockoff prepare`)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knockoff.data import read_source
from knockoff.data.records import FAKE
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.indexing import IndexConfig, calibration_specs, copies_of_references, index
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery
from knockoff.params import load_config
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder, embed_records
from knockoff.scoring.open_world import SCORED, cold_start_distance, decide


def without_fakes_of(manifest: str, product: str, into: Path) -> str:
    """A copy of a prepared manifest without the product's known fakes."""
    table = pq.read_table(manifest)
    drop = pc.and_(pc.equal(table.column("product"), product), pc.equal(table.column("authenticity"), FAKE))
    out = into / Path(manifest).name
    pq.write_table(table.filter(pc.invert(pc.fill_null(drop, False))), out)
    return str(out)


def split_genuine(manifest: str, product: str, into: Path, seed: int = 0) -> tuple[str, list]:
    """(the calibration manifest without P's fakes and with half of P's genuine photos,
    the records held out for measuring: the other half of P's genuine photos and all P's fakes)."""
    table = pq.read_table(manifest)
    mine = np.array([p == product for p in table.column("product").to_pylist()])
    fake = np.array([a == FAKE for a in table.column("authenticity").to_pylist()])
    genuine_rows = np.flatnonzero(mine & ~fake)
    measure = np.random.default_rng(seed).permutation(genuine_rows)[: len(genuine_rows) // 2]
    keep = ~(mine & fake)
    keep[measure] = False
    out = into / f"calibration-{Path(manifest).name}"
    pq.write_table(table.filter(keep), out)
    measured = set(measure.tolist())
    held_out = [r for i, r in enumerate(read_source(manifest)) if i in measured or (mine[i] and fake[i])]
    return str(out), held_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product", required=True)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--epochs", type=int, default=None, help="default: params train.epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps per epoch (smoke runs)")
    parser.add_argument("--false-flag-rate", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-cold-start.json"))
    args = parser.parse_args()

    from knockoff.model.export import ExportConfig, run_export
    from knockoff.model.training import TrainConfig, train

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="knockoff-cold-start-") as scratch:
        work = Path(scratch)
        config = load_config(TrainConfig, "train", args.params)
        strip = lambda specs: tuple(without_fakes_of(s, args.product, work) for s in specs if Path(s).is_file())  # noqa: E731
        config = dataclasses.replace(config, train=strip(config.train), val_gallery=strip(config.val_gallery),
                                     val_queries=strip(config.val_queries), epochs=args.epochs or config.epochs,
                                     max_steps_per_epoch=args.max_steps)
        train(config, work / "checkpoint.pt")
        run_export(load_config(ExportConfig, "export", args.params), work / "model.onnx", work / "checkpoint.pt", None)

        index_config = load_config(IndexConfig, "index", args.params)
        calibration, held_out = split_genuine("data/prepared/sneakers-valid.parquet", args.product, work)
        others = [s for s in calibration_specs(index_config) if "sneakers-valid" not in s]
        open_world = dataclasses.replace(index_config.open_world, cold_start_false_flag_rate=args.false_flag_rate)
        index_config = dataclasses.replace(
            index_config, references=tuple(without_fakes_of(s, args.product, work) for s in index_config.references if Path(s).is_file()),
            calibration=(calibration, *others), open_world=open_world)
        gallery = index(index_config, work / "model.onnx", work / "gallery")
        report = measure(OnnxEmbedder(work / "model.onnx"), gallery, held_out, args.product)
    report.update(product=args.product, epochs=config.epochs, false_flag_rate=args.false_flag_rate,
                  cpu=cpu_description(), minutes=round((time.perf_counter() - started) / 60, 1))
    print(json.dumps(report, indent=2))
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.product] = report
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def measure(embedder: OnnxEmbedder, gallery: Gallery, held_out: list, product: str) -> dict:
    policy = gallery.info.open_world.products[product]
    if policy.cold_start is None:
        raise SystemExit(f"{product} still has known fakes in the gallery: not a cold start")
    vectors, records, _ = embed_records(embedder, held_out, desc="held out")
    # a measured photo that is a copy of a reference (the export's augmented twins) finds
    # itself: it is left out, as calibration leaves such photos out
    copies = copies_of_references(gallery, vectors, records)
    keep = [i for i, copy_of in enumerate(copies) if copy_of is None]
    vectors, records = vectors[keep], [records[i] for i in keep]
    matches = match(gallery, vectors, with_evidence=False, claimed=[product] * len(records))
    verdicts = decide(gallery.info.open_world, matches.product, matches.nearest_catalogue, matches.nearest_background,
                      matches.product_similarity, matches.raw, matches.genuine_similarity, matches.fake_similarity)
    is_fake = np.array([r.authenticity == FAKE for r in records])
    distance = cold_start_distance(matches.genuine_similarity, policy.cold_start)
    flagged = np.asarray(verdicts.flagged)
    status = np.array(verdicts.status)
    return {
        "fakes": int(is_fake.sum()), "genuine": int((~is_fake).sum()), "left_out_copies": len(copies) - len(keep),
        "roc_auc": roc_auc(is_fake, distance),
        "fakes_flagged": float(flagged[is_fake].mean()), "genuine_flagged": float(flagged[~is_fake].mean()),
        "fakes_scored": float((status[is_fake] == SCORED).mean()), "genuine_scored": float((status[~is_fake] == SCORED).mean()),
        "cold_start": dataclasses.asdict(policy.cold_start), "support": dataclasses.asdict(policy.support),
    }


if __name__ == "__main__":
    main()
