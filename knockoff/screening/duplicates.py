"""Reused photos within a screening run: groups of rows showing one photograph (`--duplicates`).

Counterfeit sellers copy photos: the brand's own product shots, each other's, their own
across listings. Two steps, so that neither does the other's job:
1. Candidates, sub-quadratic. Every row's embedding (the run computed them anyway) goes into
   a FAISS index built from an `index_factory` string (IVF, so a search visits `nprobe` lists
   rather than every row); each row's `neighbours` nearest at cosine >= `similarity` are
   candidate pairs. A copy embeds close to its original (a 70% crop at cosine 0.58 or more,
   benchmarks/duplicates.py), but so does another photo of the same shoe: the embedding
   proposes, it never decides.
2. Verification on the pixels (knockoff.images.copies: ORB matches, a RANSAC similarity transform,
   the overlaid photos' correlation cell by cell), which tells the same photograph cropped,
   resized, re-encoded, mirrored, watermarked or captioned from another shot of the shoot.
Verified pairs are joined into groups (union-find): `duplicate_group` is the row number of
the group's first photo, null for a photo that appears once. (`reference_copy`, the gallery
reference a photo copies, is set while screening, for every run: knockoff/gallery/copies.py.)

Memory: the embeddings are spilled to a float16 file on disk, and the index holds
`SQ8` codes (one byte a dimension); photos' features are cached for the most recent pairs
(knockoff.images.copies.CopyChecker).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from knockoff.images.copies import CopyChecker, union_groups
from knockoff.scratch import scratch_folder

BLOCK_ROWS = 16_384  # embeddings read, normalised and searched this many at a time


@dataclass(frozen=True)
class DuplicateOptions:
    similarity: float = 0.55  # cosine for a candidate pair; the loosest real copy measured is 0.58
    neighbours: int = 5  # candidates per photo: a copy is among its original's nearest
    index: str = "IVF{nlist},SQ8"  # faiss index_factory string; {nlist} from the run's size
    nprobe: int = 16
    # Stricter than knockoff.images.copies' 0.95: a group joins every pair it chains, so one false link
    # merges two groups. Copies measured 0.98-1.00; same-shoot packages up to 0.976.
    min_correlation: float = 0.98
    workers: int = 2  # threads verifying pairs (OpenCV releases the GIL)


@dataclass(frozen=True)
class Reuse:
    groups: np.ndarray  # int64 per row: the group's first row, -1 for a photo seen once

    def group_of(self, start: int, count: int) -> list[int | None]:
        return [None if group < 0 else int(group) for group in self.groups[start:start + count]]


def find_reuse(parts: list[Path], options: DuplicateOptions = DuplicateOptions()) -> Reuse:
    """Groups of the rows of committed result parts (in order) that show one photograph,
    from their `embedding` column (null for a photo that failed). Every photo is searched,
    `no_match` ones too: a seller's copied photo of a catalogued product that the gallery
    could not place is still a reused photo. (Copies of gallery references are found while
    screening: knockoff/gallery/copies.py.)"""
    with scratch_folder("duplicates") as scratch:
        embeddings, present = spill_embeddings(parts, scratch / "embeddings.f16")
        pairs = candidate_pairs(embeddings, present, options)
    paths = row_paths(parts, {row for pair in pairs for row in pair})
    checker = CopyChecker(options.min_correlation)
    copies = _verified(pairs, lambda pair: checker.is_copy(*sorted((paths[pair[0]], paths[pair[1]]))), options.workers)
    return Reuse(union_groups(len(present), copies))


def spill_embeddings(parts: list[Path], spill: Path) -> tuple[np.ndarray, np.ndarray]:
    """All rows' embeddings in a float16 memory map on disk, and which rows have one."""
    total = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    present = np.zeros(total, bool)
    embeddings: np.ndarray | None = None
    start = 0
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(columns=["embedding"], batch_size=BLOCK_ROWS):
            column = batch.column(0)
            valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False))
            if valid.any():
                values = np.asarray(column.drop_null().flatten().to_numpy(zero_copy_only=False), np.float16)
                dim = values.size // int(valid.sum())
                if embeddings is None:
                    embeddings = np.lib.format.open_memmap(spill, "w+", np.float16, (total, dim))
                embeddings[start:start + len(valid)][valid] = values.reshape(-1, dim)
                present[start:start + len(valid)] = valid
            start += len(valid)
    if embeddings is None:
        embeddings = np.zeros((total, 1), np.float16)
    return embeddings, present


def candidate_pairs(embeddings: np.ndarray, present: np.ndarray, options: DuplicateOptions) -> list[tuple[int, int]]:
    """(i, j), i < j: rows among each other's `neighbours` nearest at cosine >= `similarity`,
    found through a FAISS index (approximate), the cosine then recomputed exactly."""
    import faiss

    rows = np.flatnonzero(present)
    if len(rows) < 2:
        return []
    index = _trained_index(embeddings, rows, options)
    for block in _blocks(rows):
        index.add(_unit(embeddings[block]))
    pairs: set[tuple[int, int]] = set()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = options.nprobe
    for block in _blocks(rows):
        queries = _unit(embeddings[block])
        _, found = index.search(queries, options.neighbours + 1)
        others = rows[np.maximum(found, 0)]
        candidates = (found >= 0) & (others != block[:, None])
        exact = np.einsum("bkd,bd->bk", _unit(embeddings[others.ravel()]).reshape(*others.shape, -1), queries)
        close = candidates & (exact >= options.similarity)
        firsts = np.minimum(block[:, None], others)[close]
        seconds = np.maximum(block[:, None], others)[close]
        pairs.update(zip(firsts.tolist(), seconds.tolist()))
    return sorted(pairs)


def row_paths(parts: list[Path], rows: set[int]) -> dict[int, str]:
    """The `path` of each of `rows` (read in one pass; only those rows are kept)."""
    wanted = np.array(sorted(rows), dtype=np.int64)
    paths: dict[int, str] = {}
    start = 0
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(columns=["path"], batch_size=BLOCK_ROWS):
            inside = wanted[np.searchsorted(wanted, start):np.searchsorted(wanted, start + batch.num_rows)]
            if len(inside):
                chosen = batch.column(0).take(inside - start).to_pylist()
                paths.update(zip(inside.tolist(), chosen))
            start += batch.num_rows
    return paths


def _verified(pairs: list[tuple[int, int]], check: Callable[[tuple[int, int]], bool], workers: int) -> list[tuple[int, int]]:
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="copies") as pool:
        return [pair for pair, copy in zip(pairs, pool.map(check, pairs)) if copy]


def _trained_index(embeddings: np.ndarray, rows: np.ndarray, options: DuplicateOptions):
    import faiss

    nlist = min(int(math.sqrt(len(rows))), len(rows) // 39)  # faiss wants 39 training points a list
    # a run too small for two lists is searched whole, with the same codes
    factory = options.index.format(nlist=nlist) if nlist > 1 else options.index.split(",")[-1]
    index = faiss.index_factory(embeddings.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    sample = np.sort(np.random.default_rng(0).choice(rows, min(len(rows), max(256 * nlist, 50_000)), replace=False))
    index.train(_unit(embeddings[sample]))
    return index


def _blocks(rows: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), BLOCK_ROWS):
        yield rows[start:start + BLOCK_ROWS]


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
