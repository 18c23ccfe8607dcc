"""The exported patch model (knockoff/model/patches.py) at screening: onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knockoff.runtime.embedding import ModelInfo, OnnxEmbedder

PATCHES_KIND = "patches"
PATCH_STRIDE = 16  # pixels of the model input per cell of the patch grid


QUANTIZED_FROM = "knockoff.quantized_from"  # knockoff.runtime.quantize writes it


def patches_path(model_path: Path) -> Path:
    """Where an exported model's patch model lives: models/knockoff.onnx -> models/knockoff.patches.onnx,
    models/knockoff.int8.onnx -> models/knockoff.int8.patches.onnx (its fp32 model's where that is missing)."""
    model_path = Path(model_path)
    own = model_path.with_name(model_path.name.removesuffix(".onnx") + ".patches.onnx")
    if own.is_file() or not model_path.name.endswith(".int8.onnx"):
        return own
    # an int8 model without int8 patches uses its fp32 model's (the same embedding space)
    return model_path.with_name(model_path.name.removesuffix(".int8.onnx") + ".patches.onnx")


class PatchModel:
    """uint8 (N, S, S, 3) RGB -> float32 (N, g, g, C) L2-normalised local features."""

    def __init__(self, path: Path | str, threads: int | None = None, device: str = "cpu") -> None:
        self.session = OnnxEmbedder(path, threads=threads, device=device)
        self.info: ModelInfo = self.session.info
        if self.info.kind != PATCHES_KIND:
            raise ValueError(f"{path} is a {self.info.kind} model, not a patch model (`knockoff export` writes one beside the model)")

    @property
    def versions(self) -> set[str]:
        """Its version, and that of the fp32 patch model it was quantized from: patch banks built
        with either serve it."""
        metadata = self.session.session.get_modelmeta().custom_metadata_map
        return {self.info.version, *([metadata[QUANTIZED_FROM]] if QUANTIZED_FROM in metadata else [])}

    @property
    def grid(self) -> int:
        return self.info.input_size // PATCH_STRIDE

    def serves(self, model: ModelInfo) -> bool:
        """Whether these patches come from `model` (or the fp32 model an int8 one was quantized from)."""
        return self.info.space == model.space

    def features(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.grid, self.grid, self.info.embedding_dim), np.float32)
        return self.session.embed(images)
