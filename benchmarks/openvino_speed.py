"""The shipped models under OpenVINO's CPU runtime beside onnxruntime, in the same run.

Does OpenVINO run Knockoff's fp32 or int8 model faster than onnxruntime does on this CPU,
and with the same embeddings? OpenVINO reads the ONNX files as they are (the int8 model's
QDQ pairs become its own low-precision graph). Each engine and model: model-only images/s
at batches of 2 (what screening runs on CPU) on 2 threads, the four runs interleaved and the
median of `--pairs` rounds; and the embeddings' cosine to onnxruntime's fp32 on the same
photos. OpenVINO runs each model twice: at f32 inference precision, and at the CPU's default
(bf16 on a CPU with AVX-512 BF16 or AMX, which changes the fp32 model's arithmetic). The
CPU heads the output; every figure is this CPU's.

OpenVINO is an optional extra (`pip install -e .[openvino]`), never needed to screen.

    KNOCKOFF_DATA=../shared/datasets python benchmarks/openvino_speed.py [--photos 256] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from knockoff.data import read_sources
from knockoff.images.decode import load_rgb
from knockoff.runtime.cpu import cpu_description
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.runtime.sessions import session_options

BATCH = 2
THREADS = 2

Runner = Callable[[np.ndarray], np.ndarray]


def onnxruntime_runner(path: Path) -> Runner:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), session_options(threads=THREADS, spin=True), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def openvino_runner(path: Path, precision: str | None) -> Runner:
    """`precision` None: the CPU's default inference precision (bf16 where the CPU has it)."""
    import openvino as ov

    core = ov.Core()
    settings = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        settings["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(core.read_model(str(path)), "CPU", settings)
    request = compiled.create_infer_request()
    output = compiled.output(0)
    return lambda images: np.array(request.infer({0: images})[output])


def images_per_second(run: Runner, photos: np.ndarray) -> float:
    run(photos[:BATCH])  # warm-up (OpenVINO and onnxruntime both specialise on the first shape)
    started = time.perf_counter()
    for start in range(0, len(photos), BATCH):
        run(photos[start:start + BATCH])
    return len(photos) / (time.perf_counter() - started)


def embed(run: Runner, photos: np.ndarray) -> np.ndarray:
    return np.concatenate([run(photos[start:start + BATCH]) for start in range(0, len(photos), BATCH)])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--int8", type=Path, default=Path("models/knockoff.int8.onnx"))
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-openvino.json"))
    args = parser.parse_args()
    import openvino as ov

    cpu = cpu_description()
    print(f"CPU: {cpu}; OpenVINO {ov.__version__}", flush=True)
    size = OnnxEmbedder(args.fp32).info.input_size
    photos = np.stack([load_rgb(r.path, size) for r in list(read_sources(["sneakers/valid"]))[:args.photos]])
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    runners = {"onnxruntime fp32": onnxruntime_runner(args.fp32), "onnxruntime int8": onnxruntime_runner(args.int8)}
    for model, path in (("fp32", args.fp32), ("int8", args.int8)):
        runners[f"openvino {model}, f32 precision"] = openvino_runner(path, "f32")
        runners[f"openvino {model}, the CPU's default ({default})"] = openvino_runner(path, None)
    reference = embed(runners["onnxruntime fp32"], photos)
    rounds = [{label: images_per_second(run, photos) for label, run in runners.items()} for _ in range(args.pairs)]
    report = {"cpu": cpu, "openvino": ov.__version__, "openvino_default_precision": default, "photos": len(photos),
              "batch": BATCH, "threads": THREADS, "runs": {}}
    for label, run in runners.items():
        similarity = cosine(embed(run, photos), reference)
        report["runs"][label] = {
            "images_per_s": round(statistics.median(r[label] for r in rounds), 1),
            "over_onnxruntime_fp32": round(statistics.median(r[label] / r["onnxruntime fp32"] for r in rounds), 2),
            "cosine_to_onnxruntime_fp32_mean": round(float(similarity.mean()), 4),
            "cosine_to_onnxruntime_fp32_min": round(float(similarity.min()), 3),
        }
        entry = report["runs"][label]
        print(f"{label:44s} {entry['images_per_s']:7.1f} images/s, {entry['over_onnxruntime_fp32']:.2f}x onnxruntime fp32; "
              f"cosine to onnxruntime fp32 {entry['cosine_to_onnxruntime_fp32_mean']:.4f} "
              f"min {entry['cosine_to_onnxruntime_fp32_min']:.3f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
