"""onnxruntime sessions as Knockoff runs them: thread pools, the exact-int8 setting, and the
execution providers for a device."""

from __future__ import annotations

import os

import onnxruntime as ort

# onnxruntime's switch to exact int8 kernels on x86 CPUs without VNNI (knockoff.runtime.cpu)
EXACT_INT8_SETTING = ("session.x64quantprecision", "1")
DEVICES = ("cpu", "cuda")
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot run the model with this onnxruntime build."""


def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
    """One intra-op pool as wide as the cores (or `threads`).

    Spinning is off by default: while the pool busy-waits between operators it takes the
    cores the decode threads need, and on a small machine that costs more than it saves.
    `session.x64quantprecision` makes int8 exact on x86 CPUs without VNNI (knockoff.runtime.cpu); it
    changes nothing for fp32 models or on CPUs with VNNI.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry(*EXACT_INT8_SETTING)
    return options


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for `device`, or a clear error when the build lacks them."""
    if device not in _PROVIDERS:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            "--device cuda needs onnxruntime's CUDA provider, and this onnxruntime has only "
            f"{', '.join(available)}. Install the GPU build in place of the CPU one: "
            "pip uninstall -y onnxruntime && pip install 'knockoff[gpu]'"
        )
    return _PROVIDERS[device]
