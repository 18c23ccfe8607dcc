"""The exported patch model (knockoff/model/patches.py) at screening: onnxruntime only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knockoff.runtime.embedding import ModelInfo, OnnxEmbedder

PATCHES_KIND = "patches"
PATCH_STRIDE = 16  # pixels of the model input per cell of the patch grid


def patches_path(model_path: Path) -> Path:
    """Where an exported model's patch model lives: models/knockoff.onnx (and models/knockoff.int8.onnx)
    -> models/knockoff.patches.onnx."""
    model_path = Path(model_path)  # the int8 model shares its fp32 model's (the same embedding space)
    return model_path.with_name(model_path.name.removesuffix(".onnx").removesuffix(".int8") + ".patches.onnx")


class PatchModel:
    """uint8 (N, S, S, 3) RGB -> float32 (N, g, g, C) L2-normalised local features."""

    def __init__(self, path: Path | str, threads: int | None = None, device: str = "cpu") -> None:
        self.session = OnnxEmbedder(path, threads=threads, device=device)
        self.info: ModelInfo = self.session.info
        if self.info.kind != PATCHES_KIND:
            raise ValueError(f"{path} is a {self.info.kind} model, not a patch model (`knockoff export` writes one beside the model)")

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
