"""Stage `evaluate`: how well each model separates fakes and matches products.

Every model (the fine-tuned one, and the frozen pretrained backbone as the baseline) is
measured in the same run on the same photos, through the production path: ONNX embeddings,
a FAISS gallery, the screening scorer. Every figure is given twice: for new photographs (no
copy of them among the references: the headline) and, under `copies`, for photos that copy
a reference (photograph groups, `knockoff groups`): the latter measure recall of training
photos, not judgement of new ones.
- sneakers: gallery = train (genuine + fakes), queries = valid: ROC-AUC, average precision,
  recall at the target precision, product top-1; the precision and recall of a `flagged`
  decision, estimated out-of-sample by 2-fold cross-fitting over photograph groups.
- grocery packages: queries = val phone photos; gallery = one studio iconic image per
  product, then iconic + train photos: Recall@1 (the nearest reference is the product).
- the int8 model (`export --int8`), as deployed: its queries against galleries embedded by
  the fp32 model it was quantized from; its ROC-AUC and AP beside fp32's.
- the previous model (by default the one committed at git HEAD) is measured on the same
  photos; if the new model is worse by more than the tolerance, the stage fails.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knockoff.data import data_root, portable_path, read_source
from knockoff.data.groups import group_keys, new_photographs, read_groups
from knockoff.data.records import FAKE, ImageRecord
from knockoff.evaluation.metrics import average_precision, precision_recall_curve, recall_at_precision, roc_auc, roc_curve
from knockoff.evaluation.open_world_report import CrawlPart, open_world_report
from knockoff.gallery.indexing import IndexConfig, split_unmonitored
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery, read_info
from knockoff.runtime.embedding import OnnxEmbedder, embed_records
from knockoff.scoring import ScorerParams, fit_calibration


@dataclass(frozen=True)
class EvaluateConfig:
    sneakers_gallery: str | None = None
    sneakers_queries: str | None = None
    grocery_iconic: str | None = None
    grocery_train: str | None = None
    grocery_queries: str | None = None
    target_precision: float = 0.95
    # A retrained model may not fall below the previous one by more than this, on these.
    regression_tolerance: float = 0.01
    regression_metrics: tuple[str, ...] = ("roc_auc", "average_precision")
    # The open-world report (knockoff/evaluation/open_world_report.py): a mixed crawl, group -> source,
    # and the unmonitored source whose held-back half set the gallery's no-match threshold.
    crawl: dict[str, str] = field(default_factory=dict)
    unmonitored: str | None = None
    groups: str = ""  # photograph groups (`knockoff groups`): new photographs and copies apart
    batch_size: int = 32
    workers: int = 2


@dataclass
class _Embedded:
    records: list[ImageRecord]
    vectors: np.ndarray


class EmbeddingCache:
    """Each (model, source) embedded once per run, whichever measurement asks first; and the
    photograph group of each photo."""

    def __init__(self, config: EvaluateConfig) -> None:
        self.config = config
        self._cache: dict[tuple[str, str], _Embedded] = {}
        self.groups = read_groups(Path(config.groups)) if config.groups else {}
        self.known_copies: set[str] = set()  # portable paths the index found to copy a reference (excluded_copies)

    def keys(self, records: list[ImageRecord]) -> np.ndarray:
        return group_keys([portable_path(r.path, data_root()) for r in records], self.groups)

    def new_photographs(self, records: list[ImageRecord], gallery_specs: str | tuple[str, ...], embedder: OnnxEmbedder) -> np.ndarray:
        """Which photos no reference of these galleries copies (every photo, without groups)."""
        specs = (gallery_specs,) if isinstance(gallery_specs, str) else gallery_specs
        references = [r for spec in specs for r in self.get(embedder, spec).records]
        known = np.array([portable_path(r.path, data_root()) not in self.known_copies for r in records], dtype=bool)
        return new_photographs(self.keys(records), self.keys(references)) & known

    def get(self, embedder: OnnxEmbedder, spec: str) -> _Embedded:
        key = (embedder.info.version, spec)
        if key not in self._cache:
            records = list(read_source(spec))
            label = f"{embedder.info.kind} {embedder.info.precision} {Path(spec).stem}"
            vectors, kept, _ = embed_records(embedder, records, self.config.batch_size, self.config.workers, label)
            self._cache[key] = _Embedded(kept, vectors)
        return self._cache[key]


def evaluate_model(embedder: OnnxEmbedder, config: EvaluateConfig, scorer: ScorerParams,
                   gallery_embedder: OnnxEmbedder | None = None, cache: EmbeddingCache | None = None) -> tuple[dict, dict]:
    """(metrics, curves) of one model. `gallery_embedder` embeds the references when it is
    not the model itself: an int8 model is measured as it is deployed, against galleries
    its fp32 model built."""
    cache = cache or EmbeddingCache(config)
    gallery_embedder = gallery_embedder or embedder

    def embedded(spec: str) -> _Embedded:
        return cache.get(embedder, spec)

    def gallery_of(*specs: str) -> Gallery:
        parts = [cache.get(gallery_embedder, s) for s in specs]
        records = [r for p in parts for r in p.records]
        return Gallery.build(np.concatenate([p.vectors for p in parts]), records, gallery_embedder.info, scorer=scorer)

    metrics: dict = {"model_version": embedder.info.version, "precision": embedder.info.precision,
                     "embedding_dim": embedder.info.embedding_dim}
    curves: dict = {}
    if config.sneakers_gallery and config.sneakers_queries:
        queries = embedded(config.sneakers_queries)
        matches = match(gallery_of(config.sneakers_gallery), queries.vectors, with_evidence=False)
        keys = cache.keys(queries.records)
        is_fake = np.array([r.authenticity == FAKE for r in queries.records])
        products = np.array([r.product for r in queries.records], dtype=object)
        new = cache.new_photographs(queries.records, config.sneakers_gallery, gallery_embedder)
        figures = {}
        for name, members in (("new", new), ("copies", ~new)):
            if not 0 < is_fake[members].sum() < members.sum():
                figures[name] = {"queries": int(members.sum())}
                continue
            figures[name] = {
                "queries": int(members.sum()),
                "photographs": len(set(keys[members])),
                "roc_auc": roc_auc(is_fake[members], matches.raw[members]),
                "average_precision": average_precision(is_fake[members], matches.raw[members]),
                f"recall_at_{round(config.target_precision * 100)}_precision": recall_at_precision(
                    is_fake[members], matches.raw[members], config.target_precision),
                "product_top1": float(np.mean(np.array(matches.product, dtype=object)[members] == products[members])),
                "flagged_cross_fitted": cross_fitted_flagging(matches.raw[members], is_fake[members], config.target_precision,
                                                              keys=keys[members]),
            }
        metrics["sneakers"] = {**figures["new"], "copies": figures["copies"]}
        curves["roc"] = roc_curve(is_fake[new], matches.raw[new])
        curves["pr"] = precision_recall_curve(is_fake[new], matches.raw[new])
    if config.grocery_queries and config.grocery_iconic:
        queries = embedded(config.grocery_queries)
        galleries = {"recall_at_1_iconic": (config.grocery_iconic,)}
        if config.grocery_train:
            galleries["recall_at_1_iconic_and_train"] = (config.grocery_iconic, config.grocery_train)
        figures = {"new": {}, "copies": {}}
        for metric, specs in galleries.items():
            new = cache.new_photographs(queries.records, specs, gallery_embedder)
            hits = nearest_is_product(gallery_of(*specs), queries)
            for name, members in (("new", new), ("copies", ~new)):
                figures[name]["queries"] = int(members.sum())
                figures[name][metric] = float(hits[members].mean()) if members.any() else None
        metrics["grocery"] = {**figures["new"], "copies": figures["copies"]}
    return metrics, curves


def nearest_is_product(gallery: Gallery, queries: _Embedded) -> np.ndarray:
    """Per photo, whether its single nearest reference is the right product (Recall@1 is the mean)."""
    _, rows = gallery.search(queries.vectors, 1)
    nearest = [gallery.product_names[gallery.product_codes[row]] for row in rows[:, 0]]
    return np.array([n == r.product for n, r in zip(nearest, queries.records)], dtype=bool)


def cross_fitted_flagging(raw: np.ndarray, is_fake: np.ndarray, target_precision: float, seed: int = 0,
                          keys: np.ndarray | None = None, folds: int = 5) -> dict:
    """Precision/recall of the `flagged` decision on photos its threshold was not fit on.

    The photos are dealt into `folds` parts; calibration is fit on all parts but one and
    applied to that one, in turn. With `keys` (photograph groups) each group stays whole in
    one part. Fit on four fifths, each threshold is nearly the shipped one (fit on all): fit on
    half, a hundred new photographs hold too few fakes to certify 0.95 with one false flag
    more than they show, and the figure measured the small fit rather than the model.
    """
    keys = np.arange(len(raw)).astype(str) if keys is None else np.asarray(keys)
    groups = np.unique(keys)
    fold_of_group = dict(zip(groups[np.random.default_rng(seed).permutation(len(groups))].tolist(),
                             np.arange(len(groups)) % folds))
    fold = np.array([fold_of_group[key] for key in keys.tolist()])
    if len(groups) < folds or not (0 < is_fake.sum() < len(is_fake)):
        return {"precision": None, "recall": None, "flagged": 0}
    flagged = np.zeros(len(raw), dtype=bool)
    for held_out in range(folds):
        fit, apply = fold != held_out, fold == held_out
        if is_fake[fit].min() == is_fake[fit].max():
            continue  # one class only: nothing to fit, nothing flagged
        calibration = fit_calibration(raw[fit], is_fake[fit], target_precision)
        flagged[apply] = calibration.probability(raw[apply]) >= calibration.threshold
    hits = int((flagged & is_fake).sum())
    return {
        "precision": hits / max(int(flagged.sum()), 1),
        "recall": hits / max(int(is_fake.sum()), 1),
        "flagged": int(flagged.sum()),
        "genuine_flagged": int((flagged & ~is_fake).sum()),
        "folds": folds,
    }


def int8_vs_fp32(results: dict, int8: OnnxEmbedder, fp32: OnnxEmbedder, cache: EmbeddingCache) -> dict:
    """The int8 model's loss against fp32 on the sneakers queries, and the CPU it was measured on:
    int8 arithmetic differs between CPUs (knockoff.runtime.cpu), so the figure is never read off the wrong one."""
    from knockoff.runtime.cpu import cpu_description, int8_exactness

    spec = cache.config.sneakers_queries
    int8_queries, fp32_queries = cache.get(int8, spec), cache.get(fp32, spec)
    if [r.path for r in int8_queries.records] != [r.path for r in fp32_queries.records]:
        raise ValueError(f"int8 and fp32 decoded different photos of {spec}")
    cosine = (int8_queries.vectors * fp32_queries.vectors).sum(axis=1)
    comparison = {metric: results["int8"]["sneakers"][metric] - results["finetuned"]["sneakers"][metric]
                  for metric in ("roc_auc", "average_precision")}
    return {**comparison, "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "cpu": cpu_description(), "int8_exact_on_this_cpu": int8_exactness().exact,
            "quantization": json.loads(int8.info.quantization or "{}")}


class RegressionError(Exception):
    """The retrained model is worse than the previous one beyond the tolerance."""


def model_at_revision(path: Path, revision: str, into: Path) -> Path | None:
    """The file `path` as committed at a git revision, written to `into`; None if unavailable."""
    try:
        blob = subprocess.run(["git", "show", f"{revision}:./{path.as_posix()}"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    into.write_bytes(blob)
    return into


def compare(current: dict, previous: dict, config: EvaluateConfig) -> dict:
    """Differences on the sneakers metrics, and which fell by more than the tolerance."""
    difference = {m: current["sneakers"][m] - previous["sneakers"][m] for m in config.regression_metrics}
    return {
        "previous_version": previous["model_version"],
        "current_version": current["model_version"],
        "difference": difference,
        "tolerance": config.regression_tolerance,
        "regressed": [m for m, change in difference.items() if change < -config.regression_tolerance],
    }


@dataclass
class OpenWorldInputs:
    """What the open-world report screens: the gallery without its calibration photos, the crawl
    parts, the held-back unmonitored embeddings, the index settings, and the copies apart."""

    gallery: Gallery
    parts: list[CrawlPart]
    unmonitored_held_back: np.ndarray
    index_config: IndexConfig
    copies: frozenset[str]
    group_of: dict[str, str]


def open_world_inputs(embedder: OnnxEmbedder, gallery_path: Path, config: EvaluateConfig,
                      cache: EmbeddingCache) -> OpenWorldInputs:
    gallery = Gallery.load(gallery_path, model=embedder.info)
    world = gallery.info.open_world
    if world is None or gallery.info.calibration is None:
        raise ValueError(f"gallery {gallery_path} has no open-world calibration: rebuild it with `knockoff index`")
    calibrated_on = set(gallery.info.calibration.source.split(","))
    # The calibration photos joined the shipped gallery once calibrated (add_calibration_photos):
    # here they are the photos judged, so the report reads the gallery without them.
    gallery = gallery.without_calibration_photos()
    parts = [CrawlPart(group, cache.get(embedder, spec).records, cache.get(embedder, spec).vectors, spec in calibrated_on)
             for group, spec in config.crawl.items()]
    held_back = []
    if config.unmonitored:
        _, held = split_unmonitored(list(read_source(config.unmonitored)))
        held_back, _, _ = embed_records(embedder, held, config.batch_size, config.workers, "unmonitored held back")
    index_config = IndexConfig(target_precision=gallery.info.calibration.target_precision, open_world=world.params)
    copies, group_of = _copies_of_references(gallery, parts, cache)
    return OpenWorldInputs(gallery, parts, np.asarray(held_back, dtype=np.float32), index_config, copies, group_of)


def evaluate_open_world(embedder: OnnxEmbedder, gallery_path: Path, config: EvaluateConfig, cache: EmbeddingCache) -> dict:
    """The mixed-crawl report against the gallery as built (its background references, and its
    per-product calibration re-fit on four fifths, judging the fifth: knockoff/evaluation/open_world_report.py)."""
    inputs = open_world_inputs(embedder, gallery_path, config, cache)
    return open_world_report(inputs.gallery, inputs.parts, inputs.unmonitored_held_back, inputs.index_config,
                             copies=inputs.copies, group_of=inputs.group_of)


def _copies_of_references(gallery: Gallery, parts: list, cache: EmbeddingCache) -> tuple[frozenset[str], dict[str, str]]:
    """(paths of the crawl's photos whose photograph a reference shows, each photo's group)."""
    reference_keys = group_keys(gallery.references.column("path").to_pylist(), cache.groups)
    records = [r for part in parts for r in part.records]
    keys = cache.keys(records)
    copied = ~new_photographs(keys, reference_keys) | np.array([portable_path(r.path, data_root()) in cache.known_copies
                                                                  for r in records], dtype=bool)
    return frozenset(r.path for r, copy in zip(records, copied) if copy), {r.path: k for r, k in zip(records, keys)}


def evaluate(models: dict[str, Path], config: EvaluateConfig, scorer: ScorerParams, out_dir: Path,
             previous: Path | None = None, gallery_path: Path | None = None) -> dict:
    """Evaluate each named model (and the previous one, if given), write metrics.json and
    ROC/PR plots under out_dir; raise RegressionError after writing if the model regressed."""
    results, curves = {}, {}
    cache = EmbeddingCache(config)
    if gallery_path is not None:
        cache.known_copies = set(read_info(gallery_path).excluded_copies)
    embedders = {name: OnnxEmbedder(path) for name, path in models.items()}
    by_version = {embedder.info.version: embedder for embedder in embedders.values()}
    for name, embedder in embedders.items():
        gallery_embedder = by_version.get(embedder.info.space, embedder)
        results[name], curves[name] = evaluate_model(embedder, config, scorer, gallery_embedder, cache)
    if "int8" in results and "finetuned" in results and "sneakers" in results["int8"]:
        results["int8_vs_fp32"] = int8_vs_fp32(results, embedders["int8"], embedders["finetuned"], cache)
    if gallery_path is not None and config.crawl and "finetuned" in embedders:
        results["open_world"] = evaluate_open_world(embedders["finetuned"], gallery_path, config, cache)
    if previous is not None and "finetuned" in results and "sneakers" in results["finetuned"]:
        embedder = OnnxEmbedder(previous)
        same = embedder.info.version == results["finetuned"]["model_version"]
        results["previous"] = results["finetuned"] if same else evaluate_model(embedder, config, scorer, cache=cache)[0]
        results["comparison"] = compare(results["finetuned"], results["previous"], config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    if any(curves.values()):
        plot_curves(curves, out_dir / "plots")
    if "open_world" in results:
        plot_open_world(results["open_world"], out_dir / "plots" / "open_world.png")
    regressed = results.get("comparison", {}).get("regressed")
    if regressed:
        changes = ", ".join(f"{m} {results['comparison']['difference'][m]:+.4f}" for m in regressed)
        raise RegressionError(f"the new model is worse than {results['previous']['model_version']} on sneakers valid: "
                              f"{changes} (tolerance {config.regression_tolerance})")
    return results


def plot_curves(curves: dict[str, dict], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    for kind, (x_label, y_label) in {"roc": ("false positive rate", "true positive rate"),
                                     "pr": ("recall", "precision")}.items():
        figure, axes = plt.subplots(figsize=(5, 5))
        for name, model_curves in curves.items():
            if kind in model_curves:
                first, second = model_curves[kind]
                x, y = (first, second) if kind == "roc" else (second, first)
                axes.plot(x, y, label=name, drawstyle="steps-post" if kind == "pr" else "default")
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        axes.set_title(f"sneakers valid: {kind.upper()}")
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(out_dir / f"{kind}.png", dpi=120)
        plt.close(figure)


def plot_open_world(report: dict, out: Path) -> None:
    """Per group of the mixed crawl: the share of photos flagged, not matched and unsupported."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted(report["groups"])
    measures = {"flagged": lambda g: g["flagged_rate"], "no_match": lambda g: g["no_match_rate"],
                "unsupported": lambda g: g["status"].get("unsupported", 0) / g["photos"]}
    figure, axes = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(measures)
    for offset, (name, value) in enumerate(measures.items()):
        positions = [i + (offset - (len(measures) - 1) / 2) * width for i in range(len(groups))]
        axes.bar(positions, [value(report["groups"][g]) for g in groups], width, label=name)
    axes.set_xticks(range(len(groups)), [f"{g}\n({report['groups'][g]['photos']})" for g in groups])
    axes.set_ylabel("share of the group's photos")
    axes.set_ylim(0, 1)
    axes.set_title(f"open-world crawl: flag precision {report['flag_precision'] or 0:.3f}")
    axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
