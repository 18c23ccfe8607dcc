"""Where the model's time goes, by kind of operator: why int8 does (not) pay on a CPU.

Runs the exported model under onnxruntime's profiler (graph left unfused, so every node
keeps its name) and prints each kind's share of operator time; depthwise and stem
convolutions are told apart from the 1x1 ones that `export --int8` quantizes.

    python benchmarks/model_profile.py [models/knockoff.onnx]
"""

from __future__ import annotations

import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.runtime.quantize import float_convolutions
from knockoff.runtime.sessions import session_options


def operator_shares(model_path: Path, batch_size: int = 32, runs: int = 6) -> dict[str, float]:
    model = onnx.load(str(model_path))
    stem = float_convolutions(model, leading=1)[0]
    depthwise = {n.name for n in model.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)}
    options = session_options(spin=True)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "profile")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    size = OnnxEmbedder(model_path).info.input_size
    images = np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
    for _ in range(runs):
        session.run(None, {session.get_inputs()[0].name: images})
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        node, op = event["name"].removesuffix("_kernel_time"), event["args"].get("op_name", "?")
        kind = ("depthwise conv" if node in depthwise else "stem conv" if node == stem
                else "1x1 conv" if op == "Conv" else op)
        totals[kind] += event["dur"]
    everything = sum(totals.values())
    return {kind: duration / everything for kind, duration in totals.most_common()}


if __name__ == "__main__":
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models/knockoff.onnx")
    for kind, share in operator_shares(model).items():
        if share >= 0.001:
            print(f"{kind:<28} {share:6.1%}")
