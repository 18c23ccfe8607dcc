"""Export an Embedder to ONNX: uint8 (N, H, W, 3) in, L2-normalised (N, D) out.

The batch axis is dynamic; normalisation is in the graph; the model's name, kind, input
size, embedding size, mean/std and version go into the ONNX metadata, where the screening
side reads them. Every export is checked against torch on real and random pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from knockoff.model.embedder import Embedder
from knockoff.runtime.embedding import ModelInfo, OnnxEmbedder
from knockoff.runtime.patches import PATCHES_KIND, patches_path

INPUT_NAME, OUTPUT_NAME, PATCHES_NAME = "images", "embeddings", "patches"


class ParityError(AssertionError):
    """The exported graph disagrees with the torch model beyond the tolerance."""


def model_info(model: Embedder, version: str, kind: str) -> ModelInfo:
    return ModelInfo(
        name=model.config.backbone,
        kind=kind,
        version=version,
        input_size=model.config.input_size,
        embedding_dim=model.embedding_dim,
        mean=model.config.mean,
        std=model.config.std,
    )


def export_onnx(
    model: torch.nn.Module,
    info: ModelInfo,
    out_path: Path,
    check_images: np.ndarray | None = None,
    tolerance: float = 1e-4,
    opset: int = 18,
    output_name: str = OUTPUT_NAME,
) -> float:
    """Write the ONNX file and return the max |onnxruntime - torch| over the check images
    (`model`: an Embedder, or its PatchFeatures with `output_name` PATCHES_NAME)."""
    model = model.eval()
    size = info.input_size
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter is chatty about internals
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[output_name],
            dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    proto = program.model_proto
    for key, value in info.to_metadata().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save_model(proto, temporary)
    difference = parity(model, temporary, _check_batch(check_images, size))
    if difference > tolerance:
        temporary.unlink()
        raise ParityError(f"ONNX and torch embeddings differ by {difference:.2e} > {tolerance:.0e}")
    temporary.replace(out_path)
    return difference


def parity(model: torch.nn.Module, onnx_path: Path, images: np.ndarray) -> float:
    """Max absolute difference between torch and onnxruntime outputs for the same pixels."""
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(images)).numpy()
    actual = OnnxEmbedder(onnx_path).embed(images)
    return float(np.abs(expected - actual).max())


def _check_batch(check_images: np.ndarray | None, size: int) -> np.ndarray:
    """Real photos when given, plus random pixels and the extremes (all black, all white)."""
    rng = np.random.default_rng(0)
    synthetic = [rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8),
                 np.zeros((1, size, size, 3), np.uint8), np.full((1, size, size, 3), 255, np.uint8)]
    parts = ([check_images] if check_images is not None and len(check_images) else []) + synthetic
    return np.ascontiguousarray(np.concatenate(parts))


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18
    parity_tolerance: float = 1e-4
    check_images: str | None = None  # source of real photos for the parity check
    check_count: int = 16


def run_export(config: ExportConfig, out: Path, checkpoint: Path | None, backbone: str | None) -> tuple[ModelInfo, float]:
    """Export a trained checkpoint, or (backbone given) the frozen pretrained backbone."""
    from itertools import islice

    from knockoff.data import read_source
    from knockoff.images.decode import ImageLoadError, load_rgb
    from knockoff.model.checkpoint import load_checkpoint, model_version
    from knockoff.model.embedder import EmbedderConfig, create_embedder

    if checkpoint is not None:
        model, extra = load_checkpoint(checkpoint)
        info = model_info(model, extra["version"], "finetuned")
    else:
        model = create_embedder(EmbedderConfig(backbone=backbone, embedding_dim=None), pretrained="offline").eval()
        info = model_info(model, model_version(model), "pretrained")
    photos = []
    if config.check_images:
        for record in islice(read_source(config.check_images), config.check_count):
            try:
                photos.append(load_rgb(record.path, info.input_size))
            except ImageLoadError:
                continue
    check = np.stack(photos) if photos else None
    difference = export_onnx(model, info, out, check, config.parity_tolerance, config.opset)
    if checkpoint is not None:
        export_patches(model, info, patches_path(out), check, config.parity_tolerance, config.opset)
    return info, difference


def export_patches(model: Embedder, info: ModelInfo, out_path: Path, check_images: np.ndarray | None = None,
                   tolerance: float = 1e-4, opset: int = 18) -> ModelInfo:
    """The model's local features (knockoff.model.patches) as their own ONNX file, naming the
    model they come from (embedding_space): galleries keep patch banks per model."""
    from dataclasses import replace

    from knockoff.model.patches import PatchFeatures

    features = PatchFeatures(model).eval()
    patch_info = replace(info, kind=PATCHES_KIND, embedding_dim=features.channels, embedding_space=info.version,
                         version=f"{info.version}-patches")
    export_onnx(features, patch_info, out_path, check_images, tolerance, opset, output_name=PATCHES_NAME)
    return patch_info
