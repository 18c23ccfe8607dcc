"""The model and gallery the service scores uploads with, swapped without a restart.

The service checks the files' fingerprints every few seconds. A new model or gallery is
loaded beside the one in use and swapped in only as a pair that belongs together (the
gallery was built for that model); until then the old pair keeps scoring. A request takes
one snapshot and scores with it alone, so a score never mixes versions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knockoff.gallery.matching import match
from knockoff.gallery.store import INFO_FILE, Gallery, ModelMismatchError
from knockoff.images.decode import decode_rgb
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.screening.local import LocalEvidence


class ScorerUnavailable(Exception):
    """No consistent model + gallery pair could be loaded."""


@dataclass(frozen=True)
class Snapshot:
    embedder: OnnxEmbedder
    gallery: Gallery
    fingerprint: tuple
    local: LocalEvidence | None = None  # regions, where the model has its patch model and the gallery its banks

    @property
    def versions(self) -> dict[str, str]:
        return {"model_version": self.embedder.info.version, "index_version": self.gallery.info.version}

    def score(self, image_bytes: bytes, name: str = "upload", claimed: str | None = None, own_path: str | None = None) -> dict:
        """One photo's screening row; judged against `claimed` when it names a catalogued
        product. `own_path`: the photo's file, whose own reference (if the gallery holds it)
        is never evidence for it."""
        pixels = decode_rgb(image_bytes, self.embedder.info.input_size, name=name)
        result = match(self.gallery, self.embedder.embed(pixels[None]), claimed=[claimed], pixels=pixels[None],
                       paths=[own_path] if own_path else None)
        scored = result.status is not None and result.status[0] in ("scored", "copy")
        regions = self.local.regions(pixels[None], result.status, result.product)[0] if self.local and result.status else None
        return {
            "status": result.status[0] if result.status is not None else None,
            "status_reason": result.reason[0] if result.reason is not None else None,
            "score": float(result.score[0]) if scored else None,
            "flagged": bool(result.flagged[0]) if result.flagged is not None else None,
            "threshold": _finite(result.threshold[0]) if result.threshold is not None else None,
            "calibration_level": result.level[0] if result.level is not None else None,
            "raw_score": float(result.raw[0]),
            "product": result.product[0],
            "product_similarity": float(np.nan_to_num(result.product_similarity[0])),
            "neighbors": result.neighbors[0].as_py(),
            "nearest_genuine": result.nearest_genuine[0].as_py(),
            "nearest_fake": result.nearest_fake[0].as_py(),
            "reference_copy": result.copy_of[0] if result.copy_of is not None else None,
            "regions": regions,
            **self.versions,
        }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class LiveScorer:
    def __init__(self, model_path: Path, gallery_path: Path, check_every_s: float = 2.0, threads: int = 1,
                 sync: Callable[[], object] | None = None) -> None:
        self.model_path = Path(model_path)
        self.gallery_path = Path(gallery_path)
        self.sync = sync  # run before each check: brings the working gallery up to date
        self.check_every_s = check_every_s
        self.threads = threads
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if now - self._checked_at >= self.check_every_s or self._snapshot is None:
            with self._lock:
                if now - self._checked_at >= self.check_every_s or self._snapshot is None:
                    self._checked_at = now
                    self._refresh()
        if self._snapshot is None:
            raise ScorerUnavailable(self.last_error or "no model loaded")
        return self._snapshot

    def reload(self) -> None:
        """Load the model and gallery again now (after this service rewrote the gallery)."""
        with self._lock:
            self._checked_at = time.monotonic()
            self._refresh()

    def _fingerprint(self) -> tuple:
        parts = []
        for path in (self.model_path, self.gallery_path / INFO_FILE):
            stat = path.stat()
            parts.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(parts)

    def _refresh(self) -> None:
        try:
            if self.sync is not None:
                self.sync()
            fingerprint = self._fingerprint()
            if self._snapshot is not None and fingerprint == self._snapshot.fingerprint:
                return
            embedder = OnnxEmbedder(self.model_path, threads=self.threads)
            gallery = Gallery.load(self.gallery_path, model=embedder.info)
            local = LocalEvidence.of(self.model_path, embedder.info, gallery, threads=self.threads)
        except (OSError, ValueError, ModelMismatchError, RuntimeError) as error:
            # A half-written gallery, or a new model whose gallery is not built yet: keep the
            # pair in use and try again at the next check.
            self.last_error = f"{type(error).__name__}: {error}"
            return
        self._snapshot = Snapshot(embedder, gallery, fingerprint, local)
        self.last_error = None
