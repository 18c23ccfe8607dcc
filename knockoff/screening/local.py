"""Local evidence at screening: the regions of each judged photo (knockoff/gallery/regions.py)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from knockoff.gallery.regions import find_regions
from knockoff.gallery.store import Gallery, ModelMismatchError
from knockoff.runtime.embedding import ModelInfo
from knockoff.runtime.patches import PatchModel, patches_path
from knockoff.scoring.open_world import SCORED


class LocalEvidence:
    """The patch model beside a model, and the gallery's patch banks."""

    def __init__(self, patch_model: PatchModel, gallery: Gallery) -> None:
        if gallery.patches is None:
            raise ValueError("the gallery keeps no patch banks")
        if gallery.patches.model_version not in patch_model.versions:  # an int8 one: banks of the fp32 it came from
            raise ModelMismatchError(f"the gallery's patch banks come from {gallery.patches.model_version}, not from "
                                     f"{patch_model.info.version}: rebuild the gallery with `knockoff index`")
        self.patch_model = patch_model
        self.banks = gallery.patches
        self._path_of = lru_cache(maxsize=65536)(lambda row: gallery.reference_rows(np.array([row]))[row]["path"])

    @classmethod
    def of(cls, model_path: Path, model: ModelInfo, gallery: Gallery, threads: int | None = None,
           device: str = "cpu") -> LocalEvidence | None:
        """Local evidence for this model and gallery, or None where either lacks its part (a
        model exported before local evidence, a gallery built without the patch model)."""
        path = patches_path(model_path)
        if gallery.patches is None or not path.is_file():
            return None
        patch_model = PatchModel(path, threads=threads, device=device)
        if not patch_model.serves(model):
            raise ModelMismatchError(f"{path} belongs to model {patch_model.info.space}, not {model.space}: "
                                     "export the model again (`knockoff export`)")
        return cls(patch_model, gallery)

    def regions(self, images: np.ndarray, status: list[str], product: list[str | None]) -> list[list[dict] | None]:
        """Per decoded photo, its regions as dicts (REGION), or None where it reached no verdict."""
        judged = [i for i, s in enumerate(status) if s == SCORED and product[i]]
        found: list[list[dict] | None] = [None] * len(status)
        if not judged:
            return found
        features = self.patch_model.features(images[judged])
        for j, i in enumerate(judged):
            found[i] = [region.to_dict() for region in find_regions(features[j], product[i], self.banks, self._path_of)]
        return found
