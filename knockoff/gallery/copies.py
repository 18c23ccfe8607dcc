"""Is a screened photo a copy of a gallery reference? The copy verdict, from the gallery alone.

Sellers reuse photos: a known fake's photo (strong evidence: the same listing photo as a
confirmed counterfeit), or the brand's own shot (which proves nothing about the goods). An
embedding cannot tell a copy from another photo of the same shoe, and the scores the k-NN
gives such a photo describe the photograph it copies, not the goods.

The gallery keeps a square grey thumbnail of its catalogued references (one per photograph
group: copies of one shot share it), a few KB each, so the check needs no access to the
reference photos: a fresh clone can run it. A screened photo's candidates are its nearest
catalogued references at cosine >= `similarity` (the loosest copy `knockoff index` saw
between held-back photos and the references they copy, less a margin), at most `candidates`
of them; each is verified on the pixels (knockoff.images.copies, an affine transform since
both thumbnails are squashed) against the photo's own model input, so nothing is read twice.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from knockoff.images.copies import MIN_CORRELATION, THUMBNAIL_INLIERS, THUMBNAIL_SIDE, FeatureCache, Features, square_thumbnail, thumbnail_features, verify
from knockoff.images.decode import ImageLoadError, load_rgb

REFERENCE_FEATURE_CACHE = 4096  # references whose ORB features are kept (about 40 KB each)
# One row per catalogued reference: the reference whose thumbnail stands for it (the first of
# its photograph group), and the thumbnail on that reference's own row (null on the others).
THUMBNAIL_SCHEMA = pa.schema([("path", pa.string()), ("stand_in", pa.string()), ("thumbnail", pa.binary())])


@dataclass(frozen=True)
class CopyParams:
    similarity: float = 0.5  # candidates at or above this cosine to the photo (index fits it)
    candidates: int = 2  # nearest catalogued references verified per photo, at most
    min_inliers: int = THUMBNAIL_INLIERS
    min_correlation: float = MIN_CORRELATION

    def to_dict(self) -> dict:
        return asdict(self)


class ReferenceCopies:
    """Copy verdicts against a gallery's references, from the thumbnails it stores."""

    def __init__(self, table: pa.Table, reference_paths: list[str], params: CopyParams) -> None:
        paths, stand_ins, thumbnails = (table.column(name).to_pylist() for name in ("path", "stand_in", "thumbnail"))
        self.thumbnails = {path: data for path, data in zip(paths, thumbnails) if data is not None}
        stand_in_of = dict(zip(paths, stand_ins))
        self.params = params
        # reference row -> the path whose thumbnail stands for it (None: not a catalogued reference)
        self._stand_in = [stand_in_of.get(path) for path in reference_paths]
        self._features = FeatureCache(REFERENCE_FEATURE_CACHE)

    def copied_rows(self, pixels: np.ndarray, similarities: np.ndarray, rows: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """Per photo (its model input pixels, its search results and which of them may be
        copied), the reference row it copies, or -1."""
        copied = np.full(len(pixels), -1, dtype=np.int64)
        candidates = eligible & (rows >= 0) & (similarities >= self.params.similarity)
        for i in np.flatnonzero(candidates.any(axis=1)):
            mine: Features | None = None
            for row in rows[i][candidates[i]][: self.params.candidates].tolist():
                theirs = self._reference_features(row)
                if theirs is None:
                    continue
                mine = mine or thumbnail_features(square_thumbnail(pixels[i]))
                if verify(theirs, mine, self.params.min_inliers, self.params.min_correlation, affine=True).copy:
                    copied[i] = row
                    break
        return copied

    def _reference_features(self, row: int) -> Features | None:
        path = self._stand_in[row]
        if path is None:
            return None
        thumbnail = self.thumbnails.get(path)
        return self._features.get(path, lambda: thumbnail_features(thumbnail) if thumbnail is not None else None)


def thumbnail_table(paths: list[str], stand_ins: list[str], thumbnails: dict[str, bytes]) -> pa.Table:
    """Rows sorted by path, so the same references give the same bytes (git stores the file once)."""
    order = sorted(range(len(paths)), key=paths.__getitem__)
    return pa.table([pa.array([paths[i] for i in order], pa.string()), pa.array([stand_ins[i] for i in order], pa.string()),
                     pa.array([thumbnails.get(paths[i]) if stand_ins[i] == paths[i] else None for i in order], pa.binary())],
                    schema=THUMBNAIL_SCHEMA)


def merge_thumbnails(table: pa.Table | None, added: pa.Table) -> pa.Table:
    """`added` rows after `table`'s, one row per path (a re-added reference keeps its first row)."""
    if table is None:
        return added
    known = set(table.column("path").to_pylist())
    fresh = [path not in known for path in added.column("path").to_pylist()]
    merged = pa.concat_tables([table, added.filter(pa.array(fresh, pa.bool_()))])
    return merged.take(pa.array(sorted(range(merged.num_rows), key=merged.column("path").to_pylist().__getitem__)))


def reference_thumbnails(paths: list[str], portable_paths: list[str], group_keys: list[str] | None = None,
                         workers: int = 2) -> pa.Table:
    """Thumbnails of references (read from `paths`, stored under `portable_paths`): one per
    photograph group, the group's first reference by path standing in for the rest (whatever
    the order they come in). An unreadable reference gets none (it can never be called copied)."""
    keys = group_keys if group_keys is not None else portable_paths
    first_of: dict[str, int] = {}
    for index in sorted(range(len(keys)), key=portable_paths.__getitem__):
        first_of.setdefault(keys[index], index)
    stand_ins = [portable_paths[first_of[key]] for key in keys]
    chosen = sorted(first_of.values())
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="thumbnails") as pool:
        made = list(pool.map(lambda i: _thumbnail_of(paths[i]), chosen))
    thumbnails = {portable_paths[i]: data for i, data in zip(chosen, made) if data is not None}
    return thumbnail_table(portable_paths, stand_ins, thumbnails)


def _thumbnail_of(path: str) -> bytes | None:
    try:
        return square_thumbnail(load_rgb(path, THUMBNAIL_SIDE))
    except (ImageLoadError, OSError, ValueError):
        return None
