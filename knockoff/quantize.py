"""Static int8 quantization of an exported model (`knockoff export --int8`), with onnxruntime.

QDQ format: weights int8 per channel, activations uint8, their ranges calibrated on
reference images run through the fp32 model. Only the pointwise (1x1) and other dense
convolutions are quantized, which is most of the arithmetic. Left in float, measured on
sneakers photos (cosine to the fp32 embedding, mean over 200 `valid` photos):
- depthwise convolutions: their activations have outliers that one uint8 range per tensor
  cannot hold (all convolutions int8: 0.85; with MinMax or percentile ranges alike);
- the stem convolution, fed the normalised pixels, and the projection head (with them
  int8: 0.94; without: 0.99);
- the pixel normalisation and the L2 normalisation, where int8 would only add error.
The int8 model
shares the fp32 model's embedding space (`knockoff.embedding_space`), so it searches the
same galleries; it has its own version, so results say which model scored them.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knockoff.embedding import META_PREFIX, OnnxEmbedder

QUANTIZED_OPS = ("Conv",)


@dataclass(frozen=True)
class QuantizeConfig:
    calibration: tuple[str, ...] = ()  # sources of reference photos
    count: int = 256  # photos drawn from them, at random (seeded)
    seed: int = 0


def int8_path(fp32_path: Path) -> Path:
    """models/knockoff.onnx -> models/knockoff.int8.onnx"""
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def quantize_int8(fp32_path: Path, out_path: Path, calibration_images: np.ndarray, batch_size: int = 16) -> str:
    """Write the int8 model calibrated on `calibration_images` (N, S, S, 3) uint8; returns its version."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = OnnxEmbedder(fp32_path)
    if source.info.precision != "fp32":
        raise ValueError(f"{fp32_path} is already {source.info.precision}; quantize the fp32 export")
    input_name = source.session.get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = _batches(calibration_images, batch_size)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="knockoff-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantized), Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=float_convolutions(onnx.load(str(prepared))),
        )
        model = onnx.load(str(quantized))
        version = _int8_version(source.info.version, model)
        metadata = {**source.info.to_metadata(), f"{META_PREFIX}version": version,
                    f"{META_PREFIX}precision": "int8", f"{META_PREFIX}embedding_space": source.info.space}
        del model.metadata_props[:]
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save_model(model, str(quantized))
        quantized.replace(out_path)
    return version


def calibration_images(sources: list[str] | tuple[str, ...], count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` reference photos drawn at random (seeded) from `sources`, decoded for the model."""
    import random

    from knockoff.data import read_sources
    from knockoff.imaging import ImageLoadError, load_rgb

    records = list(read_sources(sources))
    if not records:
        raise ValueError(f"no calibration photos in {list(sources)} (params export.int8_calibration)")
    images = []
    for record in random.Random(seed).sample(records, min(count, len(records))):
        try:
            images.append(load_rgb(record.path, size))
        except ImageLoadError:
            continue
    return np.stack(images)


def float_convolutions(model) -> list[str]:
    """The convolutions kept in float: the stem and every depthwise (grouped) convolution."""
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    grouped = [node.name for node in convolutions
               if any(attribute.name == "group" and attribute.i > 1 for attribute in node.attribute)]
    return [convolutions[0].name, *grouped] if convolutions else []


def _batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(images), batch_size):
        yield np.ascontiguousarray(images[start:start + batch_size])


def _int8_version(fp32_version: str, model) -> str:
    digest = hashlib.sha256(fp32_version.encode())
    for initializer in model.graph.initializer:
        digest.update(initializer.name.encode())
        digest.update(initializer.raw_data)
    return digest.hexdigest()[:16]
