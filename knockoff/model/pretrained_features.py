"""Pooled ImageNet features of a frozen pretrained backbone, for each photo and its mirror image.

Used where a fixed embedding that no training run has shaped is wanted: the candidates of
photograph groups (`knockoff groups`), which must not depend on the model they split data for.
The backbone is exported to ONNX first (onnxruntime runs it about twice as fast as torch on
a CPU), exactly as the frozen baseline of `knockoff export --backbone` is.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from knockoff.data.records import ImageRecord
from knockoff.model.embedder import EmbedderConfig, create_embedder
from knockoff.model.export import export_onnx, model_info
from knockoff.runtime.batches import decode_batches
from knockoff.runtime.embedding import OnnxEmbedder


def pretrained_features(records: list[ImageRecord], backbone: str, batch_size: int = 32,
                        workers: int = 2) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """(features, features of the mirrored photo, error per record) in record order; a photo
    that fails to decode has zero features and its error."""
    model = create_embedder(EmbedderConfig(backbone=backbone, embedding_dim=None), pretrained="offline").eval()
    with tempfile.TemporaryDirectory(prefix="knockoff-features-") as scratch:
        path = Path(scratch) / "backbone.onnx"
        export_onnx(model, model_info(model, "pretrained", "pretrained"), path)
        embedder = OnnxEmbedder(path)
        width, size = embedder.info.embedding_dim, embedder.info.input_size
        straight, mirrored, errors = [], [], []
        with tqdm(total=len(records), desc=f"features ({backbone})", unit="img") as progress:
            for batch in decode_batches(records, size, batch_size, workers):
                for views, pixels in ((straight, batch.images), (mirrored, np.ascontiguousarray(batch.images[:, :, ::-1]))):
                    full = np.zeros((len(batch.records), width), np.float32)
                    full[batch.ok] = embedder.embed(pixels)
                    views.append(full)
                errors += batch.errors
                progress.update(len(batch.records))
    empty = np.zeros((0, width), np.float32)
    return (np.concatenate(straight) if straight else empty), (np.concatenate(mirrored) if mirrored else empty), errors
