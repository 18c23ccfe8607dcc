"""Which embedding judges new photographs best, for its cost: the options table of the README.

Every option is a frozen ImageNet backbone at an input size (optionally on the product crop
the sneakers labels' boxes give, as a detector would find it), measured on cached features
of every sneakers photo (`train` and `valid`), grouped by photograph (`knockoff groups`):
- *frozen k-NN*: each photo scored by the soft k-NN log-odds (k 10, the best of T 0.01,
  0.02, 0.05) over every photo of its product *outside its own photograph group*: a new
  photograph, never a copy of itself. ROC-AUC over all of them; groups whose copies carry
  conflicting labels are left out;
- *+ mirror*: the photo's embedding averaged with its mirror image's (two views per photo);
- *head, grouped 5-fold*: a 256-d projection trained with the soft k-NN loss on four folds
  of photograph groups (each photo or its mirror image), scored on the fifth against the four
  (the fine-tuning's head, on a frozen backbone);
- *images/s*: the backbone alone in onnxruntime, batches of 16 at the input size, on this CPU.
`--sampling` compares, for one option, how the head's training draws photos: every copy
(all), each photograph equally (weighted), one copy each (one), at equal steps, two seeds.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/embedding_options.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from knockoff.data import portable_path
from knockoff.data.groups import conflicting_groups, group_keys, read_groups
from knockoff.data.prepare import read_prepared
from knockoff.evaluation.metrics import roc_auc
from knockoff.images.decode import load_rgb, squash
from knockoff.model.backbone import create_backbone
from knockoff.runtime.cpu import cpu_description

ROOT = Path(os.environ.get("KNOCKOFF_DATA", "data/raw"))
OPTIONS = [("tf_efficientnet_lite0", 224, "full"), ("tf_efficientnet_lite0", 224, "crop"), ("tf_efficientnet_lite0", 320, "full"),
           ("tf_efficientnet_lite1", 240, "full"), ("tf_efficientnet_lite2", 260, "full"), ("tf_efficientnet_lite2", 260, "crop"),
           ("tf_efficientnet_lite2", 380, "full")]


class _Pixels(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.permute(0, 3, 1, 2).float() / 255.0
        return self.backbone((pixels - 0.5) / 0.5)


def export(name: str, size: int, folder: Path) -> Path:
    path = folder / f"{name}-{size}.onnx"
    torch.onnx.export(_Pixels(create_backbone(name).eval()), torch.zeros(2, size, size, 3, dtype=torch.uint8), path,
                      input_names=["x"], output_names=["f"], dynamic_axes={"x": {0: "n"}}, opset_version=18, dynamo=False)
    return path


def product_crop(path: str, size: int, margin: float = 0.1) -> np.ndarray:
    """The union of the photo's labelled boxes, with a margin, squashed to the input size."""
    label = Path(path.replace("/images/", "/labels/")).with_suffix(".txt")
    boxes = [list(map(float, line.split()[1:])) for line in label.read_text().splitlines() if line.strip()]
    left, right = min(x - w / 2 for x, _, w, _ in boxes), max(x + w / 2 for x, _, w, _ in boxes)
    top, bottom = min(y - h / 2 for _, y, _, h in boxes), max(y + h / 2 for _, y, _, h in boxes)
    grow_x, grow_y = margin * (right - left), margin * (bottom - top)
    left, right, top, bottom = max(0, left - grow_x), min(1, right + grow_x), max(0, top - grow_y), min(1, bottom + grow_y)
    big = load_rgb(path, 640)
    side = big.shape[0]
    crop = big[int(top * side):max(int(bottom * side), int(top * side) + 2), int(left * side):max(int(right * side), int(left * side) + 2)]
    return squash(np.ascontiguousarray(crop), size)


def features(model: Path, paths: list[str], size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    load = (lambda p: load_rgb(p, size)) if mode == "full" else (lambda p: product_crop(p, size))
    straight, mirrored = [], []
    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(paths), 32):
            images = np.stack(list(pool.map(load, paths[start:start + 32])))
            straight.append(session.run(None, {"x": images})[0])
            mirrored.append(session.run(None, {"x": np.ascontiguousarray(images[:, :, ::-1])})[0])
    return np.concatenate(straight), np.concatenate(mirrored)


def cached_features(cache: Path | None, model: Path, paths: list[str], name: str, size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """`features`, kept in `cache` by path: a later run (another groups file, another head) reuses them."""
    kept = cache / f"{name}-{size}-{mode}.npz" if cache else None
    if kept and kept.is_file():
        stored = np.load(kept)
        row_of = {portable_path(p, ROOT): at for at, p in enumerate(stored["paths"].tolist())}
        rows = [row_of.get(portable_path(p, ROOT)) for p in paths]
        if None not in rows:
            return stored["straight"][rows], stored["mirrored"][rows]
    straight, mirrored = features(model, paths, size, mode)
    if kept:
        kept.parent.mkdir(parents=True, exist_ok=True)
        np.savez(kept, straight=straight, mirrored=mirrored, paths=np.array(paths))
    return straight, mirrored


def images_per_second(model: Path, size: int, batches: int = 20) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    session.run(None, {"x": images})
    started = time.perf_counter()
    for _ in range(batches):
        session.run(None, {"x": images})
    return 16 * batches / (time.perf_counter() - started)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class Photos:
    """Every sneakers photo's product, side and photograph group."""

    def __init__(self, groups: dict[str, int]) -> None:
        records = [r for split in ("train", "valid") for r in read_prepared(Path(f"data/prepared/sneakers-{split}.parquet"))[0]]
        self.paths = [r.path for r in records]
        self.product = np.array([r.product for r in records], dtype=object)
        self.fake = np.array([r.authenticity == "fake" for r in records])
        self.group = group_keys([portable_path(r.path, ROOT) for r in records], groups)
        conflicts = conflicting_groups(self.group, [f"{r.product} | {r.authenticity}" for r in records])
        self.keep = np.array([key not in conflicts for key in self.group], dtype=bool)

    def knn(self, queries: np.ndarray, query_rows: np.ndarray, gallery: np.ndarray, gallery_rows: np.ndarray,
            k: int = 10, temperature: float = 0.02) -> np.ndarray:
        """Soft k-NN log-odds of each query over the gallery photos of its product outside its own group."""
        similarities = queries @ gallery.T
        scores = np.zeros(len(query_rows))
        for at, row in enumerate(query_rows):
            allowed = (self.product[gallery_rows] == self.product[row]) & (self.group[gallery_rows] != self.group[row])
            values, fakes = similarities[at][allowed], self.fake[gallery_rows][allowed]
            order = np.argsort(-values)[:k]
            top, top_fakes = values[order], fakes[order]

            def side(members: np.ndarray, everyone: np.ndarray) -> float:
                if members.any():
                    return temperature * np.log(np.exp((top[members] - top.max()) / temperature).sum()) + top.max()
                return values[everyone].max() if everyone.any() else -1.0

            scores[at] = side(top_fakes, fakes) - side(~top_fakes, ~fakes)
        return scores

    def leave_group_out(self, vectors: np.ndarray) -> float:
        rows = np.flatnonzero(self.keep)
        unit = _unit(vectors[rows])
        return max(roc_auc(self.fake[rows], self.knn(unit, rows, unit, rows, temperature=t)) for t in (0.01, 0.02, 0.05))

    def head_cross_validated(self, straight: np.ndarray, mirrored: np.ndarray, sampling: str = "all", seed: int = 0,
                             steps: int = 2500, folds: int = 5) -> float:
        rng = np.random.default_rng(seed)
        groups = np.unique(self.group[self.keep])
        fold_of = dict(zip(groups, rng.integers(0, folds, len(groups))))
        fold = np.array([fold_of.get(key, -1) for key in self.group])
        classes = np.unique([f"{p}|{f}" for p, f in zip(self.product, self.fake)], return_inverse=True)[1]
        scores = np.full(len(self.paths), np.nan)
        for held in range(folds):
            train = np.flatnonzero(self.keep & (fold != held))
            test = np.flatnonzero(self.keep & (fold == held))
            pool, weights = _draws(train, self.group, sampling)
            head = _train_head(straight, mirrored, classes, pool, weights, steps, seed)
            with torch.no_grad():
                train_vectors = torch.nn.functional.normalize(head(torch.tensor(straight[train])), dim=1).numpy()
                test_vectors = torch.nn.functional.normalize(head(torch.tensor(straight[test])), dim=1).numpy()
            scores[test] = self.knn(test_vectors, test, train_vectors, train)
        measured = ~np.isnan(scores)
        return roc_auc(self.fake[measured], scores[measured])


def _draws(rows: np.ndarray, group: np.ndarray, sampling: str) -> tuple[np.ndarray, np.ndarray]:
    if sampling == "one":
        first: dict[str, int] = {}
        for row in rows:
            first.setdefault(group[row], row)
        pool = np.array(sorted(first.values()))
        return pool, np.full(len(pool), 1.0 / len(pool))
    if sampling == "weighted":
        sizes = {key: count for key, count in zip(*np.unique(group[rows], return_counts=True))}
        weights = np.array([1.0 / sizes[group[row]] for row in rows])
        return rows, weights / weights.sum()
    return rows, np.full(len(rows), 1.0 / len(rows))


def _train_head(straight: np.ndarray, mirrored: np.ndarray, classes: np.ndarray, pool: np.ndarray, weights: np.ndarray,
                steps: int, seed: int, dim: int = 256, temperature: float = 0.05) -> torch.nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = torch.nn.Sequential(torch.nn.Linear(straight.shape[1], dim, bias=False), torch.nn.BatchNorm1d(dim))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        batch = rng.choice(pool, 128, p=weights)
        view = rng.random(128) < 0.5
        inputs = torch.tensor(np.where(view[:, None], mirrored[batch], straight[batch]), dtype=torch.float32)
        labels = torch.tensor(classes[batch])
        embedded = torch.nn.functional.normalize(head(inputs), dim=1)
        logits = embedded @ embedded.T / temperature
        logits.fill_diagonal_(-1e9)
        same = (labels[:, None] == labels[None, :]).float()
        same.fill_diagonal_(0)
        loss = -torch.log((torch.softmax(logits, dim=1) * same).sum(1).clamp_min(1e-9))[same.sum(1) > 0].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=Path, default=Path("data/groups.parquet"))
    parser.add_argument("--sampling", action="store_true", help="compare the head's group sampling on lite0 at 320")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-embedding-options.json"))
    parser.add_argument("--cache", type=Path, help="keep each option's features here (NAME-SIZE-MODE.npz, with the paths), "
                                                   "and reuse them: extracting them all takes about 45 minutes on 2 cores")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    photos = Photos(read_groups(args.groups))
    report: dict = {"cpu": cpu_description(), "photos": int(photos.keep.sum()), "photographs": len(set(photos.group[photos.keep])),
                    "options": []}
    with tempfile.TemporaryDirectory(prefix="knockoff-options-") as scratch:
        for name, size, mode in ([OPTIONS[2]] if args.sampling else OPTIONS):
            model = export(name, size, Path(scratch))
            straight, mirrored = cached_features(args.cache, model, photos.paths, name, size, mode)
            if args.sampling:
                report["sampling"] = {sampling: [round(photos.head_cross_validated(straight, mirrored, sampling, seed), 4)
                                                 for seed in (0, 1)] for sampling in ("all", "weighted", "one")}
                break
            both = (_unit(straight) + _unit(mirrored)) / 2
            row = {"backbone": name, "input": size, "photo": mode,
                   "frozen_knn": round(photos.leave_group_out(straight), 4),
                   "frozen_knn_mirror": round(photos.leave_group_out(both), 4),
                   "head_grouped_5_fold": round(photos.head_cross_validated(straight, mirrored), 4),
                   "images_per_s": round(images_per_second(model, size), 1)}
            report["options"].append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
