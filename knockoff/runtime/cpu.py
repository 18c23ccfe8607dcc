"""What this CPU can do for int8: its instruction sets, and whether int8 arithmetic is exact here.

onnxruntime's x86 int8 kernels multiply uint8 activations by int8 weights. With VNNI
(AVX512-VNNI, AVX-VNNI) one instruction multiplies and accumulates in 32 bits, exactly.
Without it, AVX2 and AVX-512 use VPMADDUBSW, which adds each pair of products into a
saturating 16-bit integer: 255 x 127 x 2 does not fit, so the same int8 model gives other
embeddings there (measured under an emulated AVX2 CPU: cosine to fp32 0.935, min 0.75,
instead of 0.98). Knockoff's sessions set `session.x64quantprecision`, onnxruntime's switch
to exact uint8 x uint8 kernels, on such CPUs only (with VNNI the switch only slows int8 down),
and check the result: `int8_exactness` runs a
shipped probe model whose products saturate under VPMADDUBSW and warns, naming the missing
instruction, if the answer is wrong on this machine.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knockoff.runtime.sessions import _proc_cpuinfo, cpu_features, session_options  # noqa: F401 (cpu_features: re-exported)

# A 1x1 QDQ convolution: 64 channels of uint8 255 times int8 127 (see build_probe).
PROBE_PATH = Path(__file__).with_name("probes") / "int8_saturation.onnx"
PROBE_CHANNELS = 64
_PROBE_OUTPUT_SCALE = 0.5  # the exact answer, 64.0, is uint8 128 at this scale


def cpu_description() -> str:
    """e.g. 'AMD EPYC (x86_64; AVX2 yes, AVX-512 yes, VNNI yes)': printed beside every int8 figure."""
    name = _proc_cpuinfo("model name") or platform.processor() or "unknown CPU"
    machine = platform.machine()
    if not _is_x86(machine):
        return f"{name} ({machine})"
    features = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in cpu_features().items())
    return f"{name} ({machine}; {features})"


@dataclass(frozen=True)
class Int8Exactness:
    exact: bool
    probe_value: float  # the probe's output; exact: float(PROBE_CHANNELS)
    warning: str | None  # what to tell the user when not exact


@functools.cache
def int8_exactness() -> Int8Exactness:
    """Run the probe with Knockoff's session settings: is int8 arithmetic exact on this CPU?"""
    return probe_int8(session_options(threads=1))


def probe_int8(options) -> Int8Exactness:
    """The probe under these onnxruntime session options (tests compare with and without the setting)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(PROBE_PATH), options, providers=["CPUExecutionProvider"])
    inputs = np.ones((1, PROBE_CHANNELS, 4, 4), dtype=np.float32)
    value = float(session.run(None, {session.get_inputs()[0].name: inputs})[0].mean())
    exact = abs(value - PROBE_CHANNELS) <= _PROBE_OUTPUT_SCALE
    return Int8Exactness(exact, value, None if exact else _saturation_warning(value))


def _saturation_warning(value: float) -> str:
    features = cpu_features()
    missing = "VNNI (AVX512-VNNI or AVX-VNNI)" if features["AVX2"] else "VNNI and AVX2"
    return (
        f"this CPU lacks {missing}: onnxruntime's int8 kernels saturate here (probe answered {value:g}, "
        f"exact is {PROBE_CHANNELS}), so the int8 model's embeddings drift from fp32 beyond the 0.005 "
        f"ROC-AUC Knockoff promises. Screen with the fp32 model (models/knockoff.onnx). CPU: {cpu_description()}"
    )


def build_probe(path: Path = PROBE_PATH) -> None:
    """Write the probe (needs `onnx`; the file is shipped, tests check it is what this builds).

    x (1, 64, 4, 4) float -> QuantizeLinear uint8 (scale 1/255) -> DequantizeLinear -> Conv 1x1
    with int8 weights 127 (scale 1/127) -> QuantizeLinear/DequantizeLinear (scale 0.5). onnxruntime
    fuses it into the same QLinearConv the int8 model runs. Exact: 64 x (255/255) x (127/127) = 64;
    with pairs of 255 x 127 saturated at 32767 in 16 bits, about half of that.
    """
    import onnx
    from onnx import TensorProto, helper

    def scalar(name: str, value, dtype) -> onnx.TensorProto:
        return helper.make_tensor(name, dtype, [], [value])

    weights = helper.make_tensor("w_q", TensorProto.INT8, [1, PROBE_CHANNELS, 1, 1], [127] * PROBE_CHANNELS)
    initializers = [
        scalar("x_scale", 1 / 255, TensorProto.FLOAT), scalar("x_zero", 0, TensorProto.UINT8),
        weights, scalar("w_scale", 1 / 127, TensorProto.FLOAT), scalar("w_zero", 0, TensorProto.INT8),
        scalar("y_scale", _PROBE_OUTPUT_SCALE, TensorProto.FLOAT), scalar("y_zero", 0, TensorProto.UINT8),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w_dq"]),
        helper.make_node("Conv", ["x_dq", "w_dq"], ["y"], name="probe_conv"),
        helper.make_node("QuantizeLinear", ["y", "y_scale", "y_zero"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zero"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "knockoff_int8_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, PROBE_CHANNELS, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 4, 4])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="knockoff")
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def _is_x86(machine: str) -> bool:
    return machine.lower() in {"x86_64", "amd64", "i386", "i686", "x86"}
