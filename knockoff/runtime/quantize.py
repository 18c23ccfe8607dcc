"""Static int8 quantization of an exported model (`knockoff export --int8`), with onnxruntime.

QDQ format: weights int8 per channel, activations uint8, their ranges calibrated on
reference images run through the fp32 model (percentile 99.999). Every operator onnxruntime
can quantize is quantized — the convolutions, depthwise ones included, and between them the
ReLU6 clips and residual adds, so the graph runs int8 from the second block to the head
without converting back to float — except the first three convolutions (`leading_float`):
the stem, fed the normalised pixels, and the first block's depthwise and pointwise ones.

Chosen by measurement (Intel Xeon, Sapphire Rapids, with AVX-512 VNNI, 2 cores; model only,
batches of 2, int8 beside fp32 in interleaved pairs, median of 3; the embeddings' cosine to
fp32 on 256 sneakers `valid` photos, which no calibration draws; `KNOCKOFF_DATA=../shared/datasets
python benchmarks/int8_variants.py`, reports/benchmark-int8-variants.json). The first eight
rows were measured in one run, the rest in a later one (with `--only`); the stem-float recipe
is in both:

| what is quantized (QDQ, int8 weights per channel unless said) | int8 / fp32 (images/s) | with the exact switch | cosine mean / min |
| --- | ---: | ---: | ---: |
| 1x1 convolutions only; stem, depthwise, head float (first recipe) | 0.86 (81 / 94) | 0.58 | 0.986 / 0.956 |
| every convolution | 0.87 (82 / 101) | 0.44 | 0.808 / 0.552 |
| every convolution but the stem | 0.93 (119 / 127) | 0.53 | 0.921 / 0.676 |
| every operator, stem float (the last recipe) | 1.75 (164 / 98) | 0.76 | 0.986 / 0.926 |
| every operator | 1.39 (127 / 91) | 0.69 | 0.986 / 0.925 |
| every operator, stem float, per-tensor weights | 2.03 (212 / 111) | 0.76 | 0.804 / 0.516 |
| QOperator format: 1x1 convolutions only | 0.77 (86 / 102) | 0.56 | 0.986 / 0.958 |
| QOperator format: every operator, stem float | 2.01 (204 / 98) | 0.77 | 0.986 / 0.926 |
| every operator, stem float (later run) | 1.83 (171 / 93) | 0.67 | 0.986 / 0.926 |
| **every operator, stem and first block float (chosen)** | **1.96 (219 / 111)** | 0.77 | **0.992 / 0.970** |
| every operator, stem and first depthwise float | 2.01 (182 / 91) | 0.75 | 0.991 / 0.971 |
| every operator, stem and first two blocks float | 1.53 (187 / 123) | 0.75 | 0.996 / 0.982 |
| every operator, stem, head convolution and embedding float | 1.81 (170 / 95) | 0.74 | 0.986 / 0.926 |
| stem and first block float, MinMax ranges | 2.05 (178 / 87) | 0.74 | 0.991 / 0.957 |
| stem and first block float, entropy ranges | 1.99 (184 / 89) | 0.75 | 0.991 / 0.965 |

Where the error comes from was found on other photos than the table's, so that the table
checks the choice rather than makes it: 256 photos of sneakers `train` that the calibration
did not draw and of grocery `train` (`python benchmarks/int8_variants.py --photo-set
unused-train`, reports/benchmark-int8-variants-unused-train.json), each variant's cosine to
fp32 (mean, 5th percentile, min). The stem-float recipe: 0.9870 / 0.969 / 0.868. Keeping the
head convolution and the embedding layer float changed nothing (0.9871 / 0.969 / 0.869).
The first block's depthwise convolution float: 0.9923 / 0.983 / 0.974; the whole first
block: 0.9932 / 0.986 / 0.975; the first two blocks: 0.9957 / 0.992 / 0.979. With the first
block float, MinMax or entropy ranges were worse than percentile ones (0.9922 and 0.9922,
min 0.970 and 0.964). The first block runs at the stem's 160 x 160 resolution on 32 channels: its int8
activations are the coarsest in the network for the least arithmetic, so keeping it float
costs no speed the pairs can tell (int8 / fp32 1.82-2.10 over four runs, against the
stem-float recipe's 1.74-2.11 in the same runs), while the second block, float too, costs
about a sixth (1.53-1.67).

Only a graph that stays int8 from block to block pays: with float depthwise convolutions or
float ReLU6 clips between them, every quantized convolution converts its activations in and
out, and that costs what the int8 arithmetic saves. Depthwise convolutions in int8 alone
lose accuracy (their inputs' outliers); with the clips quantized too, their inputs' ranges
are the clips' [0, 6] and the error goes. The stem, fed the normalised pixels, stays float
(quantized, int8 falls to 1.39x). Per-tensor weights lose the accuracy and buy nothing
that this VM's drift (fp32 ran at 91-127 images/s between pairs) can tell apart; QOperator
runs the same kernels as QDQ, which onnxruntime fuses (side by side, batch 2: 194 and 189
images/s). The exact switch (below) makes every variant slower than fp32. onnxruntime's
graph optimizations are on in every session (ORT_ENABLE_ALL); saving the optimized graph and
loading it unoptimized ran at 1.92x with the stem-float recipe and 1.61x with the chosen one,
no faster than optimizing at load, and the saved graph
holds this CPU's NCHWc layout (onnxruntime warns it is only for the CPU it was made on), so
it is not shipped.

OpenVINO's own CPU runtime (the registry's `openvino` 2026.4.1; its onnxruntime build would
replace the `onnxruntime` package Knockoff installs) reads the same ONNX files. Measured
beside onnxruntime in three runs on the Xeon (`python benchmarks/openvino_speed.py`,
reports/benchmark-openvino.json; batches of 2, 2 threads, images/s over onnxruntime fp32):
the fp32 model 0.95-1.03x at f32 precision, and 0.63-0.77x at this CPU's default bf16,
which also changes the embeddings (cosine 0.998); the int8 model 1.81-2.56x at f32, against
onnxruntime's 1.89-2.03x in the same runs, cosine 0.993. No consistent gain, and with int8
the model is about a fifth of `knockoff screen`'s time end to end (230 images/s model only,
44 end to end), so even the best run's 1.25x on the model would add about 5% end to end. So
screening stays on onnxruntime, and OpenVINO is only the optional extra that benchmark uses
(`pip install -e .[openvino]`).

The same model must give the same embeddings on every x86 CPU. Without VNNI, onnxruntime's
uint8 x int8 kernels saturate (knockoff.runtime.cpu); Knockoff's sessions set the switch to
its exact kernels there (only there), and the model's metadata (`knockoff.quantization`)
records that beside how the model was quantized. Those exact kernels are slower than fp32,
so without VNNI `knockoff screen --precision int8` screens with the fp32 model and says so
(knockoff/runtime/precision.py). The int8 model shares the fp32 model's embedding space
(`knockoff.embedding_space`), so it searches the same galleries; it has its own version, so
results say which model scored them.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knockoff.runtime.embedding import META_PREFIX, OnnxEmbedder
from knockoff.runtime.sessions import EXACT_INT8_SETTING

QUANTIZED_OPS = None  # every operator onnxruntime can quantize (module docstring)
QUANTIZATION_KEY = "quantization"  # metadata: how the model was quantized (JSON)
QUANTIZED_FROM_KEY = "quantized_from"  # metadata: the version of the fp32 model it was quantized from


@dataclass(frozen=True)
class QuantizeConfig:
    calibration: tuple[str, ...] = ()  # sources of reference photos
    count: int = 256  # photos drawn from them, at random (seeded)
    seed: int = 0
    weights: str = "int8"  # int8 (symmetric) or uint8 (asymmetric) weights, per channel
    activations: str = "uint8"
    per_channel: bool = True
    reduce_range: bool = False  # 7-bit weights: no u8 x s8 saturation, but coarser weights
    method: str = "percentile"  # activation ranges: minmax, percentile or entropy
    leading_float: int = 3  # convolutions kept float, from the first: the stem and the first block

    def describe(self, float_nodes: int, images: int) -> dict:
        """What goes into the model's metadata, so it says how it was made."""
        return {"format": "QDQ", "ops": f"all but the first {self.leading_float} convolutions", "weights": self.weights, "activations": self.activations,
                "per_channel": self.per_channel, "reduce_range": self.reduce_range,
                "calibration": {"method": self.method, "photos": images, "sources": list(self.calibration), "seed": self.seed},
                "float_convolutions": float_nodes, "runtime": {EXACT_INT8_SETTING[0]: f"{EXACT_INT8_SETTING[1]} without VNNI"}}


def int8_path(fp32_path: Path) -> Path:
    """models/knockoff.onnx -> models/knockoff.int8.onnx"""
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix}")


def quantize_int8(fp32_path: Path, out_path: Path, calibration_images: np.ndarray,
                  config: QuantizeConfig = QuantizeConfig(), batch_size: int = 16) -> str:
    """Write the int8 model calibrated on `calibration_images` (N, S, S, 3) uint8; returns its version."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = OnnxEmbedder(fp32_path)
    if source.info.precision != "fp32":
        raise ValueError(f"{fp32_path} is already {source.info.precision}; quantize the fp32 export")
    input_name = source.session.get_inputs()[0].name

    class Reader(CalibrationDataReader):
        """Batches of the calibration photos, read a stride at a time (`set_range`): the
        calibrator keeps every activation of what it has read until it folds them into its
        histograms, which for 256 photos at 320 px is more memory than a 24 GB machine has."""

        def __init__(self) -> None:
            self._starts = list(range(0, len(calibration_images), batch_size))
            self.set_range(0, len(self._starts))

        def __len__(self) -> int:
            return len(self._starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._batches = iter(self._starts[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self._batches, None)
            return None if start is None else {input_name: np.ascontiguousarray(calibration_images[start:start + batch_size])}

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="knockoff-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        convolutions = sum(node.op_type == "Conv" for node in graph.graph.node)
        if not 0 <= config.leading_float < convolutions:
            raise ValueError(f"quantize.leading_float: {config.leading_float} must be at least 0 and below the "
                             f"model's {convolutions} convolutions (the ones kept float, from the first)")
        kept_float = float_convolutions(graph, config.leading_float)
        del graph
        types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        for name, value, allowed in (("weights", config.weights, types), ("activations", config.activations, types),
                                     ("method", config.method, methods)):
            if value not in allowed:
                raise ValueError(f"quantize.{name}: {value!r} is not one of {', '.join(allowed)}")
        quantize_static(
            str(prepared), str(quantized), Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=types[config.activations],
            weight_type=types[config.weights],
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            calibrate_method=methods[config.method],
            op_types_to_quantize=QUANTIZED_OPS,
            nodes_to_exclude=kept_float,
            # the activations are folded into the ranges a stride at a time (any calibration method)
            extra_options={"CalibStridedMinMax": _stride(len(calibration_images), batch_size)},
        )
        model = onnx.load(str(quantized))
        version = _int8_version(source.info.version, model)
        described = config.describe(len(kept_float), len(calibration_images))
        metadata = {**source.info.to_metadata(), f"{META_PREFIX}version": version,
                    f"{META_PREFIX}precision": "int8", f"{META_PREFIX}embedding_space": source.info.space,
                    f"{META_PREFIX}{QUANTIZATION_KEY}": json.dumps(described, sort_keys=True),
                    f"{META_PREFIX}{QUANTIZED_FROM_KEY}": source.info.version}
        del model.metadata_props[:]
        for key, value in metadata.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save_model(model, str(quantized))
        quantized.replace(out_path)
    return version


def calibration_records(sources: list[str] | tuple[str, ...], count: int, seed: int = 0) -> list:
    """The `count` reference photos (records) the calibration draws at random (seeded) from `sources`."""
    import random

    from knockoff.data import read_sources

    records = list(read_sources(sources))
    if not records:
        raise ValueError(f"no calibration photos in {list(sources)} (params quantize.calibration)")
    return random.Random(seed).sample(records, min(count, len(records)))


def calibration_images(sources: list[str] | tuple[str, ...], count: int, size: int, seed: int = 0) -> np.ndarray:
    """`count` reference photos drawn at random (seeded) from `sources`, decoded for the model.

    Photos that do not decode are skipped, but never silently: if none decodes (a manifest
    whose relative paths resolve under the wrong data root, typically) the error says which
    root was searched and why the first photos failed.
    """
    from knockoff.data import data_root
    from knockoff.images.decode import ImageLoadError, load_rgb

    images, failures = [], []
    drawn = calibration_records(sources, count, seed)
    for record in drawn:
        try:
            images.append(load_rgb(record.path, size))
        except ImageLoadError as error:
            failures.append(f"{record.path}: {error}")
    if not images:
        raise ValueError(
            f"none of the {len(drawn)} calibration photos drawn from {list(sources)} could be read "
            f"(data root {data_root().resolve()}; set KNOCKOFF_DATA to the folder that holds the datasets). "
            f"First failures: {'; '.join(failures[:3])}"
        )
    if failures:
        import warnings

        warnings.warn(f"{len(failures)} of {len(drawn)} calibration photos could not be read and were skipped "
                      f"(data root {data_root().resolve()}); first: {failures[0]}", stacklevel=2)
    return np.stack(images)


def float_convolutions(model, leading: int = 3) -> list[str]:
    """The convolutions kept in float: the first `leading` in graph order (the stem, fed the
    normalised pixels, and the first block's depthwise and pointwise convolutions, where int8
    loses most of its accuracy: module docstring)."""
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    return [node.name for node in convolutions[:leading]]


def _stride(images: int, batch_size: int, most_images: int = 64) -> int:
    """Batches read before the calibrator folds their activations into its ranges: the
    largest divisor of the batch count (ONNX Runtime requires one) holding at most
    `most_images` photos."""
    batches = -(-images // batch_size)
    return max(d for d in range(1, batches + 1) if batches % d == 0 and d * batch_size <= max(most_images, batch_size))


def _int8_version(fp32_version: str, model) -> str:
    digest = hashlib.sha256(fp32_version.encode())
    for initializer in model.graph.initializer:
        digest.update(initializer.name.encode())
        digest.update(initializer.raw_data)
    return digest.hexdigest()[:16]
