"""Is this photo a copy of that one? The same photograph cropped, resized, re-encoded,
mirrored, rotated, watermarked or captioned — not another photo of the same product.

An embedding cannot tell: the fine-tuned model puts every photo of a shoe near every other
(measured on 160 real photos: a 70-90% crop of a photo at cosine 0.60-0.97 to it, different
photos of the same product up to 0.96). Local features can: ORB keypoints matched between
the two photos (and the mirrored second one) and a similarity transform (rotation, scale,
shift) fit by RANSAC, then the second photo laid over the first by that transform and their
pixels compared, cell by cell (the median of a grid of correlations, so a caption bar or a
watermark does not outvote the picture). A copy correlates at 0.97 or more; another shot of
the same flat package, whose printed face alone fits one transform, stays below (grocery
same-shoot pairs: at most 0.93). Figures: `benchmarks/copies.py`. Candidates come from
elsewhere (embedding neighbours, a perceptual hash); this module only verifies pairs.

OpenCV (`opencv-python-headless`, which the screening install has for decoding) is imported lazily.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

SIDE = 320  # features are found on a grey thumbnail this wide: enough for copies, cheap
MIN_INLIERS = 30
MIN_CORRELATION = 0.95
MIN_OVERLAP = 0.3
GRID = 8  # cells across the longer side for the overlay correlation
FEATURE_CACHE = 2048  # photos whose features a CopyChecker keeps (about 120 KB each)
# Square thumbnails (a gallery's stored references, a screened photo's model input): 160 px
# grey JPEGs of about 5.5 KB find 97.8% of the copies the 320 px check finds among sneakers
# candidate pairs, with 20 inliers (benchmarks/copies.py).
THUMBNAIL_SIDE = 160
THUMBNAIL_QUALITY = 80
THUMBNAIL_INLIERS = 20


@dataclass(frozen=True)
class Features:
    grey: np.ndarray  # the thumbnail itself: a candidate copy is laid over it pixel by pixel
    keypoints: np.ndarray  # (n, 2) float32 positions
    descriptors: np.ndarray | None  # (n, 32) uint8 ORB descriptors
    mirrored_keypoints: np.ndarray
    mirrored_descriptors: np.ndarray | None


@dataclass(frozen=True)
class Verdict:
    copy: bool
    inliers: int  # matches that agree with one similarity transform
    share: float  # ... as a share of all cross-checked matches
    mirrored: bool
    correlation: float  # of the two photos' pixels, one laid over the other by that transform
    overlap: float  # share of the first photo the second covers


class FeatureCache:
    """The features of the most recent `size` photos, shared by threads. A photo's features
    are computed outside the lock: two threads may both compute one, never block each other."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._features: OrderedDict[str, Features | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Features | None]) -> Features | None:
        with self._lock:
            if key in self._features:
                self._features.move_to_end(key)
                return self._features[key]
        found = compute()
        with self._lock:
            self._features[key] = found
            if len(self._features) > self.size:
                self._features.popitem(last=False)
        return found


class CopyChecker:
    """Copy verdicts for photos named by path or URL, shared by threads: each photo's features
    are computed once (the most recent FEATURE_CACHE kept), each ordered pair verified once
    however often a crawl repeats it. An unreadable photo is never called a copy; the very
    same path is one without a look."""

    def __init__(self, min_correlation: float = MIN_CORRELATION) -> None:
        self.min_correlation = min_correlation
        self._features = FeatureCache(FEATURE_CACHE)
        self._verdicts: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    def is_copy(self, original: str, candidate: str) -> bool:
        """Whether `candidate` is a copy of `original`."""
        if original == candidate:
            return True
        pair = (original, candidate)
        with self._lock:
            known = self._verdicts.get(pair)
        if known is None:
            mine, theirs = self.features_of(original), self.features_of(candidate)
            known = (mine is not None and theirs is not None
                     and verify(mine, theirs, min_correlation=self.min_correlation).copy)
            with self._lock:
                self._verdicts[pair] = known
        return known

    def features_of(self, path: str) -> Features | None:
        return self._features.get(path, lambda: read_features(path))


def read_features(path: str) -> Features | None:
    from knockoff.images.decode import ImageLoadError, read_bytes

    try:
        return features(grey_thumbnail(read_bytes(path)))
    except (ImageLoadError, OSError, ValueError):
        return None


def union_groups(count: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Per row, the smallest row it is joined to through `pairs`; -1 for a row joined to none."""
    parent = np.arange(count, dtype=np.int64)

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = int(parent[row])
        return row

    for a, b in pairs:
        first, second = root(a), root(b)
        if first != second:
            parent[max(first, second)] = min(first, second)
    groups = np.full(count, -1, dtype=np.int64)
    for row in {row for pair in pairs for row in pair}:
        groups[row] = root(row)
    return groups


def square_thumbnail(pixels: np.ndarray, side: int = THUMBNAIL_SIDE) -> bytes:
    """A grey JPEG of RGB pixels squashed to a square (a model input, say): what a gallery
    stores of each reference for the copy check, a few KB."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    if grey.shape != (side, side):
        grey = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    if not ok:
        raise ValueError("could not encode a thumbnail")
    return encoded.tobytes()


def thumbnail_features(thumbnail: bytes) -> Features:
    import cv2

    return features(cv2.imdecode(np.frombuffer(thumbnail, np.uint8), cv2.IMREAD_GRAYSCALE))


def grey_thumbnail(data: bytes, side: int = SIDE) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (side, side))
        grey = ImageOps.exif_transpose(image).convert("L")
        grey.thumbnail((side, side))
        return np.asarray(grey)


def features(grey: np.ndarray, count: int = 500) -> Features:
    import cv2

    orb = cv2.ORB_create(nfeatures=count)
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    mirrored = np.ascontiguousarray(grey[:, ::-1])
    mirrored_keypoints, mirrored_descriptors = orb.detectAndCompute(mirrored, None)
    return Features(grey, _points(keypoints), descriptors, _points(mirrored_keypoints), mirrored_descriptors)


def verify(a: Features, b: Features, min_inliers: int = MIN_INLIERS, min_correlation: float = MIN_CORRELATION,
           affine: bool = False) -> Verdict:
    """Whether `b` is a copy of `a` (mirrored or not): enough matches agree with one
    similarity transform, and laid over `a` by it, `b`'s pixels correlate with `a`'s.
    `affine`: any affine transform instead, for thumbnails squashed to a square (a crop with
    another aspect ratio is then stretched more one way than the other)."""
    straight = _transform(a.keypoints, a.descriptors, b.keypoints, b.descriptors, affine)
    mirrored = _transform(a.keypoints, a.descriptors, b.mirrored_keypoints, b.mirrored_descriptors, affine)
    (inliers, share, transform), flipped = max((straight, False), (mirrored, True), key=lambda pair: pair[0][0])
    if transform is None or inliers < min_inliers:
        return Verdict(False, inliers, share, flipped, 0.0, 0.0)
    other = np.ascontiguousarray(b.grey[:, ::-1]) if flipped else b.grey
    correlation, overlap = _overlay_correlation(a.grey, other, transform)
    copy = correlation >= min_correlation and overlap >= MIN_OVERLAP
    return Verdict(copy, inliers, share, flipped, correlation, overlap)


def _transform(points_a, descriptors_a, points_b, descriptors_b, affine: bool = False) -> tuple[int, float, np.ndarray | None]:
    import cv2

    if descriptors_a is None or descriptors_b is None or len(points_a) < 8 or len(points_b) < 8:
        return 0, 0.0, None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(descriptors_a, descriptors_b)
    if len(matches) < 8:
        return 0, 0.0, None
    source = points_a[[m.queryIdx for m in matches]]
    target = points_b[[m.trainIdx for m in matches]]
    cv2.setRNGSeed(0)  # RANSAC draws from this thread's generator: the same pair, the same verdict
    estimate = cv2.estimateAffine2D if affine else cv2.estimateAffinePartial2D
    transform, mask = estimate(source, target, method=cv2.RANSAC, ransacReprojThreshold=4.0)
    if transform is None:
        return 0, 0.0, None
    inliers = int(mask.sum())
    return inliers, inliers / len(matches), transform


def _overlay_correlation(grey_a: np.ndarray, grey_b: np.ndarray, transform: np.ndarray) -> tuple[float, float]:
    """Pearson correlation of `a` and `b` warped onto it (lightly blurred: re-encoding and
    resizing change fine texture, not the picture), over where `b` covers `a`."""
    import cv2

    height, width = grey_a.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(grey_b.astype(np.float32), transform, (width, height), flags=flags)
    covered = cv2.warpAffine(np.ones_like(grey_b, dtype=np.float32), transform, (width, height), flags=flags) > 0.99
    overlap = float(covered.mean())
    if covered.sum() < 100:
        return 0.0, overlap
    a = cv2.GaussianBlur(grey_a.astype(np.float32), (5, 5), 1.5)
    b = cv2.GaussianBlur(warped, (5, 5), 1.5)
    # Per cell of a grid, then the median: a caption bar or a logo pasted on covers a few
    # cells, and must not outvote the rest of the picture.
    cells = []
    step = max(height, width) // GRID
    for top in range(0, height - step // 2, step):
        for left in range(0, width - step // 2, step):
            inside = covered[top:top + step, left:left + step]
            if inside.mean() < 0.9:
                continue
            cell_a = a[top:top + step, left:left + step][inside]
            cell_b = b[top:top + step, left:left + step][inside]
            cells.append(_pearson(cell_a, cell_b))
    return (float(np.median(cells)) if len(cells) >= 4 else 0.0), overlap


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    # A flat cell (sky, a white wall) says nothing: it agrees if both are flat
    if denominator < 1e-6 * a.size:
        return 1.0 if float(np.abs(a).mean() + np.abs(b).mean()) < 1.0 else 0.0
    return float((a * b).sum()) / denominator


def _points(keypoints) -> np.ndarray:
    return np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
