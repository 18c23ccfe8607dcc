"""Another product of the same category, which nobody monitors: leave one product out, with and
without the impostor bound a product alone in its kind borrows.

Each catalogued product of a group is left out in turn, and its new photographs are screened
against the gallery and a calibration that keep the group's other products
(`unmonitored_within_category`, the same measure as `knockoff evaluate`'s open-world report).
With two sneaker models, the one that remains is alone in its kind: no held-back photo of
another sneaker bounds how close an unmonitored one comes. It borrows the bound by rank from
the other groups (`knockoff/scoring/open_world.py`, `impostor_depth`). This runs the measure
twice, with that rule and with it switched off, and reports for each: the left-out products'
photos judged and flagged, and what the products that remain keep (their own new
photographs, cross-fitted: judged, flagged, fakes flagged).

    KNOCKOFF_DATA=../shared/datasets python benchmarks/within_category.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

from knockoff.evaluation.evaluate import EmbeddingCache, EvaluateConfig, open_world_inputs
from knockoff.evaluation.open_world_report import unmonitored_within_category
from knockoff.gallery.store import read_info
from knockoff.params import load_config
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.scoring import open_world


def within_category(inputs, borrowed: bool) -> dict:
    """The leave-one-product-out report, with the borrowed impostor bound or without it."""
    references = inputs.gallery.index.reconstruct_n(0, inputs.gallery.index.ntotal)
    arguments = (inputs.gallery, references, inputs.parts, inputs.unmonitored_held_back, inputs.index_config,
                 inputs.copies, inputs.group_of)
    if borrowed:
        return unmonitored_within_category(*arguments)
    with mock.patch.object(open_world, "impostor_depth", lambda held_back, rate: None):
        return unmonitored_within_category(*arguments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--gallery", type=Path, default=Path("models/gallery"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-within-category.json"))
    args = parser.parse_args()
    config = load_config(EvaluateConfig, "evaluate", args.params)
    embedder = OnnxEmbedder(args.model)
    cache = EmbeddingCache(config)
    cache.known_copies = set(read_info(args.gallery).excluded_copies)  # as `knockoff evaluate` reads them
    inputs = open_world_inputs(embedder, args.gallery, config, cache)
    report = {"model": embedder.info.version, "gallery": read_info(args.gallery).version,
              "borrowed_bound": within_category(inputs, borrowed=True),
              "without_borrowed_bound": within_category(inputs, borrowed=False)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
