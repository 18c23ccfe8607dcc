"""Photograph groups: a photo and its copies form one group, wherever data is split.

The sneakers export holds several augmented copies of most shots (rotated, mirrored,
cropped, re-coloured), spread over its splits: a `valid` photo that copies a `train` photo
measures how well the model recognises its own training photographs, not how it judges a
new one. So every prepared photo is grouped by photograph, and every split (training,
epoch selection, calibration, evaluation) keeps a group on one side.

Candidates come from an embedding (each photo's `candidates` nearest at cosine >=
`min_similarity`, the photo searched as itself and as its mirror image); the pixels decide (knockoff.images.copies: ORB matches, a RANSAC similarity transform, the
overlaid photos' correlation). Verified pairs are joined (union-find). A false link only
merges two groups, which makes a split more cautious, never less; so the correlation bar is
copies.py's own 0.95, not the stricter one that screening's duplicate groups use.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.images.copies import MIN_CORRELATION, Features, read_features, union_groups, verify

GROUP_SCHEMA = pa.schema([("path", pa.string()), ("group", pa.int64()), ("sha1", pa.string())])


@dataclass(frozen=True)
class GroupOptions:
    candidates: int = 20  # nearest photos per photo and embedding checked for a copy
    min_similarity: float = 0.5  # the loosest copy pair measured: cosine 0.51 (fine-tuned model)
    min_correlation: float = MIN_CORRELATION
    workers: int = 2  # threads computing features and verifying pairs (OpenCV releases the GIL)


@dataclass(frozen=True)
class PhotographGroups:
    """Per photo, its group: the row of the group's first photo (a photo alone is its own)."""

    paths: list[str]
    group: np.ndarray  # int64 per photo
    pairs: int  # candidate pairs verified
    copies: int  # pairs found to be copies

    @property
    def count(self) -> int:
        return len(np.unique(self.group))


def candidate_pairs(embeddings: np.ndarray, views: Sequence[np.ndarray] = (), options: GroupOptions = GroupOptions()) -> list[tuple[int, int]]:
    """(i, j), i < j: j among i's `candidates` nearest photos at cosine >= `min_similarity`,
    i searched as itself and as each of its other `views` (its mirror image, say) against
    every photo as itself (exact search)."""
    import faiss

    def unit(vectors: np.ndarray) -> np.ndarray:
        rows = np.array(vectors, dtype=np.float32, order="C")  # a copy: normalize_L2 works in place
        faiss.normalize_L2(rows)
        return rows

    index_vectors = unit(embeddings)
    index = faiss.IndexFlatIP(index_vectors.shape[1])
    index.add(index_vectors)
    pairs: set[tuple[int, int]] = set()
    for queries in (index_vectors, *(unit(view) for view in views)):
        similarities, rows = index.search(queries, min(options.candidates + 1, len(queries)))
        mine = np.repeat(np.arange(len(queries))[:, None], rows.shape[1], axis=1)
        close = (rows >= 0) & (rows != mine) & (similarities >= options.min_similarity)
        first, second = np.minimum(mine, rows)[close], np.maximum(mine, rows)[close]
        pairs.update(zip(first.tolist(), second.tolist()))
    return sorted(pairs)


def photograph_groups(paths: list[str], embeddings: np.ndarray, views: Sequence[np.ndarray] = (),
                      options: GroupOptions = GroupOptions()) -> PhotographGroups:
    """Group `paths` by photograph. Every photo's features are computed once and kept (about
    120 KB each), so each candidate pair costs one verification; an unreadable photo is its
    own group."""
    pairs = candidate_pairs(embeddings, views, options)
    with ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="groups") as pool:
        needed = sorted({row for pair in pairs for row in pair})
        features: dict[int, Features | None] = dict(zip(needed, pool.map(lambda row: read_features(paths[row]), needed)))
        verdicts = list(pool.map(lambda pair: _is_copy(features[pair[0]], features[pair[1]], options.min_correlation), pairs))
    copies = [pair for pair, copy in zip(pairs, verdicts) if copy]
    joined = union_groups(len(paths), copies)
    group = np.where(joined >= 0, joined, np.arange(len(paths)))
    return PhotographGroups(paths, group, len(pairs), len(copies))


def _is_copy(a: Features | None, b: Features | None, min_correlation: float) -> bool:
    return a is not None and b is not None and verify(a, b, min_correlation=min_correlation).copy


def write_groups(groups: PhotographGroups, portable_paths: list[str], sha1: list[str | None], out: Path) -> None:
    """One row per photo: its path as the prepared manifests hold it, its group (a row number
    of this file), its SHA-1."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table([pa.array(portable_paths, pa.string()), pa.array(groups.group, pa.int64()), pa.array(sha1, pa.string())],
                     schema=GROUP_SCHEMA)
    temporary = out.with_name(out.name + ".partial")
    pq.write_table(table, temporary)
    temporary.replace(out)


def read_groups(path: Path) -> dict[str, int]:
    """path -> group, as `knockoff groups` wrote them (paths as the prepared manifests hold them)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `knockoff groups` (DVC stage `groups`) after `knockoff prepare`")
    table = pq.read_table(path, columns=["path", "group"])
    return dict(zip(table.column("path").to_pylist(), table.column("group").to_pylist()))


def group_keys(paths: Sequence[str], groups: dict[str, int]) -> np.ndarray:
    """Each photo's group as a string key; a photo the groups file does not know is a group of its own."""
    return np.array([f"g{groups[path]}" if path in groups else f"p:{path}" for path in paths], dtype=object)


@dataclass(frozen=True)
class GroupsConfig:
    """params.yaml `groups`: which prepared manifests to group, with which candidates."""

    manifests: tuple[str, ...] = ()
    backbone: str = "tf_efficientnet_lite0"  # frozen ImageNet features propose the candidates
    candidates: int = 20
    min_similarity: float = 0.5
    min_correlation: float = MIN_CORRELATION
    workers: int = 2

    @property
    def options(self) -> GroupOptions:
        return GroupOptions(self.candidates, self.min_similarity, self.min_correlation, self.workers)


def groups_report(sources: Sequence[str], labels: Sequence[str | None], group: np.ndarray, pairs: int, copies: int) -> dict:
    """Per source: photos, photograph groups, photos whose photograph another source also holds
    (a `valid` photo copying a `train` one), and groups whose copies carry conflicting labels."""
    sources_of: dict[int, set[str]] = {}
    labels_of: dict[int, set[str]] = {}
    for source, label, key in zip(sources, labels, group.tolist()):
        sources_of.setdefault(key, set()).add(source)
        if label is not None:
            labels_of.setdefault(key, set()).add(label)
    report: dict = {"photos": len(group), "groups": len(sources_of), "candidate_pairs": pairs, "copy_pairs": copies,
                    "groups_with_conflicting_labels": sum(len(found) > 1 for found in labels_of.values()), "sources": {}}
    for name in sorted(set(sources)):
        mine = [key for source, key in zip(sources, group.tolist()) if source == name]
        report["sources"][name] = {
            "photos": len(mine),
            "groups": len(set(mine)),
            "photos_copying_another_source": sum(len(sources_of[key]) > 1 for key in mine),
            "photos_in_conflicting_groups": sum(len(labels_of.get(key, ())) > 1 for key in mine),
        }
    return report


def conflicting_groups(keys: Sequence[str], labels: Sequence[str | None]) -> set[str]:
    """Groups whose copies carry different labels (one photograph labelled fake and genuine:
    label noise in the source), to be left out of training and calibration."""
    seen: dict[str, set[str]] = {}
    for key, label in zip(keys, labels):
        if label is not None:
            seen.setdefault(key, set()).add(label)
    return {key for key, found in seen.items() if len(found) > 1}


def new_photographs(query_keys: Sequence[str], reference_keys: Sequence[str]) -> np.ndarray:
    """Which queries show a photograph none of the references shows (no copy on the other side)."""
    known = set(reference_keys)
    return np.array([key not in known for key in query_keys], dtype=bool)


def one_per_group(keys: Sequence[str]) -> np.ndarray:
    """Indices of the first photo of each group, in input order."""
    first: dict[str, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    return np.array(sorted(first.values()), dtype=np.int64)


def group_weights(keys: Sequence[str]) -> np.ndarray:
    """1 / (photos in the photo's group): each photograph weighs the same, however often it was copied."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return np.array([1.0 / counts[key] for key in keys], dtype=np.float64)
