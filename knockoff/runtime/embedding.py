"""Embedding with the exported ONNX model (onnxruntime only: the screening path has no torch)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as state

from knockoff.images.decode import PREPROCESSING
from knockoff.runtime.sessions import DeviceUnavailableError, providers_for, session_options

# ONNX metadata keys written by `knockoff export` and read here.
META_PREFIX = "knockoff."


@dataclass(frozen=True)
class ModelInfo:
    name: str  # the timm backbone
    kind: str  # 'finetuned' or 'pretrained' (frozen backbone, no head)
    version: str
    input_size: int
    embedding_dim: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocessing: str = PREPROCESSING
    precision: str = "fp32"  # or 'int8' (`knockoff export --int8`)
    # The model whose embedding space this one shares: an int8 model searches the galleries
    # built with the fp32 model it was quantized from. Empty: its own version.
    embedding_space: str = ""
    # int8 models: how they were quantized (JSON, `quantize.QuantizeConfig.describe`)
    quantization: str = ""

    @property
    def space(self) -> str:
        return self.embedding_space or self.version

    def to_metadata(self) -> dict[str, str]:
        return {
            f"{META_PREFIX}{key}": json.dumps(value) if isinstance(value, tuple) else str(value)
            for key, value in self.__dict__.items()
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], where: str = "model") -> ModelInfo:
        try:
            return cls(
                name=metadata[f"{META_PREFIX}name"],
                kind=metadata[f"{META_PREFIX}kind"],
                version=metadata[f"{META_PREFIX}version"],
                input_size=int(metadata[f"{META_PREFIX}input_size"]),
                embedding_dim=int(metadata[f"{META_PREFIX}embedding_dim"]),
                mean=tuple(json.loads(metadata[f"{META_PREFIX}mean"])),
                std=tuple(json.loads(metadata[f"{META_PREFIX}std"])),
                preprocessing=metadata.get(f"{META_PREFIX}preprocessing", PREPROCESSING),
                precision=metadata.get(f"{META_PREFIX}precision", "fp32"),
                embedding_space=metadata.get(f"{META_PREFIX}embedding_space", ""),
                quantization=metadata.get(f"{META_PREFIX}quantization", ""),
            )
        except KeyError as missing:
            raise ValueError(f"{where} is not a Knockoff export: metadata {missing} is missing") from None


class OnnxEmbedder:
    """uint8 (N, S, S, 3) RGB -> float32 (N, D) L2-normalised embeddings."""

    def __init__(self, path: Path | str, threads: int | None = None, device: str = "cpu", spin: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model {path} not found (run `dvc repro` or `knockoff export`)")
        self.path = path
        self.device = device
        if device == "cuda" and hasattr(ort, "preload_dlls"):
            # CUDA and cuDNN from the nvidia-* pip packages ('knockoff[gpu]'), when installed that
            # way; libraries on the system's search path are found without it
            ort.preload_dlls()
        providers = providers_for(device)
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads, spin), providers=providers)
        except (state.Fail, state.InvalidProtobuf, state.InvalidGraph, state.InvalidArgument) as error:
            reason = str(error).strip().splitlines()[0][:200]
            raise ValueError(f"model {path} is damaged ({reason}): export it again (`knockoff export`, or "
                             f"`git checkout {path}` for the shipped one)") from None
        if device == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            # onnxruntime falls back to the CPU when CUDA or cuDNN libraries are missing
            raise DeviceUnavailableError(
                "onnxruntime could not start its CUDA provider (are the CUDA and cuDNN libraries "
                "onnxruntime-gpu needs installed?); run without --device cuda to use the CPU"
            )
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_metadata(metadata, where=str(path))
        if self.info.precision == "int8" and device == "cpu":
            _warn_if_int8_inexact(path)
        self._input_name = self.session.get_inputs()[0].name

    def embed(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[1:] != (self.info.input_size, self.info.input_size, 3):
            raise ValueError(
                f"expected uint8 images (N, {self.info.input_size}, {self.info.input_size}, 3), "
                f"got {images.dtype} {images.shape}"
            )
        if images.shape[0] == 0:
            return np.zeros((0, self.info.embedding_dim), dtype=np.float32)
        return self.session.run(None, {self._input_name: np.ascontiguousarray(images, dtype=np.uint8)})[0]


class Int8AccuracyWarning(UserWarning):
    """This CPU cannot run the int8 model within the accuracy Knockoff promises."""


def _warn_if_int8_inexact(path: Path) -> None:
    from knockoff.runtime.cpu import int8_exactness

    check = int8_exactness()
    if not check.exact:
        warnings.warn(f"int8 model {path}: {check.warning}", Int8AccuracyWarning, stacklevel=3)


def embed_records(
    embedder: OnnxEmbedder,
    records: list,
    batch_size: int = 32,
    workers: int = 2,
    desc: str = "embed",
) -> tuple[np.ndarray, list, list[tuple[str, str]]]:
    """Embed every record that decodes: (embeddings, their records, [(path, error)] of the rest)."""
    from tqdm import tqdm

    from knockoff.runtime.batches import decode_batches

    parts, kept, failures = [], [], []
    with tqdm(total=len(records), desc=desc, unit="img") as progress:
        for batch in decode_batches(records, embedder.info.input_size, batch_size, workers):
            parts.append(embedder.embed(batch.images))
            for record, error in zip(batch.records, batch.errors):
                if error is None:
                    kept.append(record)
                else:
                    failures.append((record.path, error))
            progress.update(len(batch.records))
    embeddings = np.concatenate(parts) if parts else np.zeros((0, embedder.info.embedding_dim), np.float32)
    return embeddings, kept, failures
