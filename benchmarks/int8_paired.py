"""int8 against fp32 on the same photos, with a paired bootstrap over photographs.

The evaluate stage's int8 figure (`int8_vs_fp32` in reports/metrics.json) is one difference
of two ROC-AUCs on sneakers `valid`'s new photographs: 126 photos of 98 photographs. How far
does such a difference move by chance? Both models score the same photos exactly as the
evaluate stage does (the same gallery, scorer and photograph groups; int8 searching the
galleries its fp32 model built, as deployed); then the photographs are resampled with
replacement, each resample taking all of a photograph's photos, and the ROC-AUC difference is
recomputed on the same resample for both models. Reported: the difference, its 95% bootstrap
interval, the share of resamples in which it lies within the ±0.005 tolerance, and the same
for copies and all photos. Every figure names the CPU it was measured on (int8 arithmetic
differs between CPUs).

    KNOCKOFF_DATA=../shared/datasets python benchmarks/int8_paired.py [--resamples 2000] \
        [--out reports/benchmark-int8-paired.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from knockoff.data.records import FAKE
from knockoff.evaluation.evaluate import EmbeddingCache, EvaluateConfig
from knockoff.evaluation.metrics import roc_auc
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery, read_info
from knockoff.params import load_config
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder

TOLERANCE = 0.005


def scores(embedder: OnnxEmbedder, gallery_embedder: OnnxEmbedder, cache: EmbeddingCache, config: EvaluateConfig, scorer) -> np.ndarray:
    """The raw k-NN log-odds of each sneakers query, as the evaluate stage computes them."""
    references = cache.get(gallery_embedder, config.sneakers_gallery)
    gallery = Gallery.build(references.vectors, references.records, gallery_embedder.info, scorer=scorer)
    return np.asarray(match(gallery, cache.get(embedder, config.sneakers_queries).vectors, with_evidence=False).raw, np.float64)


def paired_bootstrap(is_fake: np.ndarray, first: np.ndarray, second: np.ndarray, groups: np.ndarray, resamples: int,
                     seed: int) -> dict:
    """ROC-AUC(second) - ROC-AUC(first), and its distribution over resampled photograph groups."""
    rng = np.random.default_rng(seed)
    names, members = np.unique(groups, return_inverse=True)
    photos_of = [np.flatnonzero(members == g) for g in range(len(names))]
    differences = []
    while len(differences) < resamples:
        drawn = np.concatenate([photos_of[g] for g in rng.integers(0, len(names), len(names))])
        if 0 < is_fake[drawn].sum() < len(drawn):
            differences.append(roc_auc(is_fake[drawn], second[drawn]) - roc_auc(is_fake[drawn], first[drawn]))
    differences = np.array(differences)
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"photos": int(len(is_fake)), "photographs": int(len(names)), "fakes": int(is_fake.sum()),
            "roc_auc_first": roc_auc(is_fake, first), "roc_auc_second": roc_auc(is_fake, second),
            "difference": roc_auc(is_fake, second) - roc_auc(is_fake, first),
            "interval_95": [float(low), float(high)], "bootstrap_sd": float(differences.std()),
            "share_within_tolerance": float(np.mean(np.abs(differences) <= TOLERANCE))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp32", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--int8", type=Path, default=Path("models/knockoff.int8.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"), help="the gallery (its scorer and excluded copies)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-int8-paired.json"))
    args = parser.parse_args()

    config = load_config(EvaluateConfig, "evaluate", args.params)
    info = read_info(args.index)
    cache = EmbeddingCache(config)
    cache.known_copies = set(info.excluded_copies)
    fp32, int8 = OnnxEmbedder(args.fp32), OnnxEmbedder(args.int8)
    fp32_scores = scores(fp32, fp32, cache, config, info.scorer)
    int8_scores = scores(int8, fp32, cache, config, info.scorer)  # int8 searches the galleries fp32 built
    records = cache.get(fp32, config.sneakers_queries).records
    if [r.path for r in records] != [r.path for r in cache.get(int8, config.sneakers_queries).records]:
        raise ValueError("int8 and fp32 decoded different photos")
    is_fake = np.array([r.authenticity == FAKE for r in records])
    groups = cache.keys(records)
    new = cache.new_photographs(records, config.sneakers_gallery, fp32)
    report = {"cpu": cpu_description(), "fp32": fp32.info.version, "int8": int8.info.version, "tolerance": TOLERANCE,
              "resamples": args.resamples}
    for name, members in (("new photographs", new), ("copies", ~new), ("all photos", np.ones(len(new), bool))):
        report[name] = paired_bootstrap(is_fake[members], fp32_scores[members], int8_scores[members], groups[members],
                                        args.resamples, args.seed)
        figures = report[name]
        print(f"{name}: {figures['photos']} photos of {figures['photographs']} photographs; ROC-AUC fp32 "
              f"{figures['roc_auc_first']:.4f}, int8 {figures['roc_auc_second']:.4f}, difference {figures['difference']:+.4f} "
              f"(95% interval {figures['interval_95'][0]:+.4f} to {figures['interval_95'][1]:+.4f}; within ±{TOLERANCE} in "
              f"{figures['share_within_tolerance']:.0%} of resamples)")
    print(report["cpu"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
