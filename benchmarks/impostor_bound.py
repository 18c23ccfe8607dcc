"""Another product of the kind, which nobody monitors: the open-world report under three impostor
bounds.

A product's impostor bound is set on its group's other products' held-back photos; where fewer
than `category_min_products` neighbour products set it, or none (a product alone in its kind),
it is made no looser than a bound borrowed by rank from the well-covered groups
(`knockoff/scoring/open_world.py`, `impostor_depth`). This runs the open-world report of
`knockoff evaluate` (`knockoff/evaluation/open_world_report.py`: the mixed crawl, cross-fitted,
and each product left out in turn within its group) three times:
- `shipped`: `category_min_products` 1, so only a product alone in its kind borrows;
- `category_min_products_5`: the sneakers, with one neighbour model each, borrow too where
  that is stricter (the Jordan 1);
- `no_borrowed_bound`: the rule switched off (a product alone in its kind has no bound).
For each it keeps the sneakers' new photographs and copies in the crawl (statuses, flags,
ROC-AUC among scored photos) and the leave-one-product-out (the left-out products' photos
judged and flagged, and what the products that remain keep).

    KNOCKOFF_DATA=../shared/datasets python benchmarks/impostor_bound.py
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from unittest import mock

from knockoff.evaluation.evaluate import EmbeddingCache, EvaluateConfig, OpenWorldInputs, open_world_inputs
from knockoff.evaluation.open_world_report import open_world_report
from knockoff.gallery.store import read_info
from knockoff.params import load_config
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.scoring import open_world


def report_with(inputs: OpenWorldInputs, variant: str) -> dict:
    """The parts of the open-world report the impostor bound moves, under one variant."""
    config = inputs.index_config
    if variant == "category_min_products_5":
        config = replace(config, open_world=replace(config.open_world, category_min_products=5))

    def run() -> dict:
        return open_world_report(inputs.gallery, inputs.parts, inputs.unmonitored_held_back, config,
                                 copies=inputs.copies, group_of=inputs.group_of)
    if variant == "no_borrowed_bound":
        with mock.patch.object(open_world, "impostor_depth", lambda *arguments: None):
            report = run()
    else:
        report = run()
    return {"new_photographs": report["groups"], "copies": report.get("copies", {}).get("groups", {}),
            "within_category": report["unmonitored_within_category"]}


VARIANTS = ("shipped", "category_min_products_5", "no_borrowed_bound")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--gallery", type=Path, default=Path("models/gallery"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-impostor-bound.json"))
    args = parser.parse_args()
    config = load_config(EvaluateConfig, "evaluate", args.params)
    embedder = OnnxEmbedder(args.model)
    cache = EmbeddingCache(config)
    cache.known_copies = set(read_info(args.gallery).excluded_copies)  # as `knockoff evaluate` reads them
    inputs = open_world_inputs(embedder, args.gallery, config, cache)
    report = {"model": embedder.info.version, "gallery": read_info(args.gallery).version,
              **{variant: report_with(inputs, variant) for variant in VARIANTS}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
