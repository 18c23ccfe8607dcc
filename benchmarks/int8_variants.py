"""int8 variants of the shipped fp32 model, each measured beside fp32 in the same run.

For each variant (which operators are quantized, QDQ or QOperator, per-channel or per-tensor
weights, which convolutions stay float, how activation ranges are set): model-only images/s at batches of 2 (what screening runs on CPU), interleaved with
fp32 and the median of 3 pairs; with and without onnxruntime's exact-int8 switch; and the
embeddings' cosine to fp32 on the same photos. Also the chosen variant's graph optimized and
saved by onnxruntime, then loaded with optimizations off. The CPU heads the output; every
figure is this CPU's.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/int8_variants.py [--work DIR] [--photos 256] [--photo-set valid|unused-train] \
        [--only LABEL ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from knockoff.data import read_sources
from knockoff.images.decode import load_rgb
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.quantize import QuantizeConfig, _stride, calibration_images, calibration_records, float_convolutions
from knockoff.runtime.sessions import session_options

CALIBRATION = ["data/prepared/sneakers-train.parquet", "data/prepared/grocery-iconic.parquet"]
CALIBRATION_COUNT, CALIBRATION_SEED = 256, 0


def measured_photos(photo_set: str, count: int) -> list:
    """`valid`: the first `count` of sneakers `valid`. `unused-train`: `count` drawn (seed 7)
    from the sneakers `train` photos the calibration did not draw and grocery `train`, the
    photos the recipe was chosen on, so that `valid` checks the choice rather than makes it."""
    import random

    if photo_set == "valid":
        return list(read_sources(["sneakers/valid"]))[:count]
    drawn = {r.path for r in calibration_records(CALIBRATION, CALIBRATION_COUNT, CALIBRATION_SEED)}
    pool = [r for r in read_sources(["data/prepared/sneakers-train.parquet"]) if r.path not in drawn]
    pool += list(read_sources(["data/prepared/grocery-train.parquet"]))
    return random.Random(7).sample(pool, count)


def variants(model: onnx.ModelProto) -> dict[str, dict]:
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"]
    stem = float_convolutions(model, 1)
    chosen = float_convolutions(model, QuantizeConfig().leading_float)  # the stem and the first block
    depthwise = [n.name for n in convolutions if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    head = [convolutions[-1].name] + [n.name for n in model.graph.node if n.op_type == "Gemm"]
    return {
        "1x1 convolutions only; stem, depthwise, head float (before)": dict(exclude=stem + depthwise),
        "every convolution": dict(exclude=[]),
        "every convolution but the stem": dict(exclude=stem),
        "every operator, stem and first block float (chosen)": dict(ops=None, exclude=chosen),
        "every operator, stem float": dict(ops=None, exclude=stem),
        "every operator, stem and first depthwise float": dict(ops=None, exclude=float_convolutions(model, 2)),
        "every operator, stem and first two blocks float": dict(ops=None, exclude=float_convolutions(model, 6)),
        "every operator, stem, head convolution and embedding float": dict(ops=None, exclude=stem + head),
        "every operator, stem and first block float, minmax ranges": dict(ops=None, exclude=chosen,
                                                                           method=CalibrationMethod.MinMax),
        "every operator, stem and first block float, entropy ranges": dict(ops=None, exclude=chosen,
                                                                            method=CalibrationMethod.Entropy),
        "every operator": dict(ops=None, exclude=[]),
        "every operator, stem float, per-tensor weights": dict(ops=None, exclude=stem, per_channel=False),
        "QOperator: 1x1 convolutions only": dict(fmt=QuantFormat.QOperator, exclude=stem + depthwise),
        "QOperator: every operator, stem float": dict(fmt=QuantFormat.QOperator, ops=None, exclude=stem),
    }


def build(prepared: Path, out: Path, images: np.ndarray, fmt=QuantFormat.QDQ, ops=("Conv",), exclude=(), per_channel=True,
          method=CalibrationMethod.Percentile) -> Path:
    if out.exists():
        return out
    name = onnx.load(str(prepared)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._starts = list(range(0, len(images), 16))
            self.set_range(0, len(self._starts))

        def __len__(self) -> int:
            return len(self._starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._batches = iter(self._starts[start_index:end_index])

        def get_next(self):
            start = next(self._batches, None)
            return None if start is None else {name: np.ascontiguousarray(images[start:start + 16])}

    quantize_static(str(prepared), str(out), Reader(), quant_format=fmt, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=per_channel, calibrate_method=method,
                    op_types_to_quantize=list(ops) if ops else None, nodes_to_exclude=list(exclude),
                    extra_options={"CalibStridedMinMax": _stride(len(images), 16)})
    return out


def session(path: Path, exact: bool, optimize: bool = True, save: Path | None = None) -> ort.InferenceSession:
    options = session_options(threads=2, spin=True, exact_int8=exact)
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if save is not None:
        options.optimized_model_filepath = str(save)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def speed(run: ort.InferenceSession, images: np.ndarray, batch: int = 2) -> float:
    name = run.get_inputs()[0].name
    run.run(None, {name: images[:batch]})
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        run.run(None, {name: images[start:start + batch]})
    return len(images) / (time.perf_counter() - started)


def embed(run: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    name = run.get_inputs()[0].name
    return np.concatenate([run.run(None, {name: images[i:i + 16]})[0] for i in range(0, len(images), 16)])


def paired(fp32: ort.InferenceSession, int8: ort.InferenceSession, images: np.ndarray, repeats: int = 3) -> dict:
    pairs = [(speed(fp32, images), speed(int8, images)) for _ in range(repeats)]
    return {"fp32": round(statistics.median(a for a, _ in pairs), 1), "int8": round(statistics.median(b for _, b in pairs), 1),
            "ratio": round(statistics.median(b / a for a, b in pairs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--photo-set", choices=["valid", "unused-train"], default="valid",
                        help="whose cosine to fp32 is measured (measured_photos)")
    parser.add_argument("--work", type=Path, default=None, help="keep the variants here (built once)")
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-int8-variants.json"))
    parser.add_argument("--only", nargs="*", default=[],
                        help="measure only these variants (their labels); the others keep their figures in --out")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="knockoff-int8-"))
    work.mkdir(parents=True, exist_ok=True)
    cpu = cpu_description()
    print(f"CPU: {cpu}", flush=True)
    size = 320
    photos = np.stack([load_rgb(r.path, size) for r in measured_photos(args.photo_set, args.photos)])
    prepared = work / "prepared.onnx"
    if not prepared.exists():
        quant_pre_process(str(args.model), str(prepared), skip_symbolic_shape=True)
    calibration = None
    fp32 = session(args.model, exact=False)
    reference = embed(fp32, photos)
    report = {"cpu": cpu, "photos": len(photos), "photo_set": args.photo_set, "batch": 2, "threads": 2, "variants": {}}
    planned = variants(onnx.load(str(prepared)))
    if args.only and args.out.exists():
        kept = json.loads(args.out.read_text())
        # a label kept from an earlier run takes today's label (which variant is chosen may have changed)
        today = {label.replace(" (chosen)", ""): label for label in planned}
        report["variants"] = {today.get(label.replace(" (chosen)", ""), label): entry for label, entry in kept["variants"].items()}
        report["chosen_saved_optimized"] = kept.get("chosen_saved_optimized")
    for label, settings in planned.items():
        if args.only and label not in args.only:
            continue
        path = work / ("".join(c if c.isalnum() else "_" for c in label)[:60] + ".onnx")
        if not path.exists():
            calibration = calibration if calibration is not None else calibration_images(CALIBRATION, CALIBRATION_COUNT, size, CALIBRATION_SEED)
            build(prepared, path, calibration, **settings)
        entry = {}
        for exact in (False, True):
            int8 = session(path, exact)
            vectors = embed(int8, photos)
            cosine = (vectors * reference).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
            entry["exact switch" if exact else "plain"] = {**paired(fp32, int8, photos), "cosine_mean": round(float(cosine.mean()), 4),
                                                            "cosine_min": round(float(cosine.min()), 3)}
        report["variants"][label] = entry
        plain = entry["plain"]
        print(f"{label:58s} int8/fp32 {plain['ratio']:.2f} ({plain['int8']:.0f} vs {plain['fp32']:.0f} images/s; with the exact "
              f"switch {entry['exact switch']['ratio']:.2f}); cosine {plain['cosine_mean']:.4f} min {plain['cosine_min']:.3f}", flush=True)
        if "(chosen)" in label:
            saved = work / "chosen.optimized.onnx"
            session(path, exact=False, save=saved)
            report["chosen_saved_optimized"] = paired(fp32, session(saved, exact=False, optimize=False), photos)
            print(f"  saved optimized graph, loaded without optimizing: int8/fp32 {report['chosen_saved_optimized']['ratio']:.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
