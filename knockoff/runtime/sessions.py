"""onnxruntime sessions as Knockoff runs them: thread pools, the exact-int8 setting, and the
execution providers for a device."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import onnxruntime as ort

# onnxruntime's switch to exact int8 kernels on x86 CPUs without VNNI (knockoff.runtime.cpu)
EXACT_INT8_SETTING = ("session.x64quantprecision", "1")
DEVICES = ("cpu", "cuda")
_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot run the model with this onnxruntime build."""


def session_options(threads: int | None = None, spin: bool = False, exact_int8: bool | None = None) -> ort.SessionOptions:
    """One intra-op pool as wide as the cores (or `threads`).

    Spinning is off by default: while the pool busy-waits between operators it takes the
    cores the decode threads need, and on a small machine that costs more than it saves.
    `session.x64quantprecision` makes int8 exact on x86 CPUs without VNNI (knockoff.runtime.cpu),
    where the fast kernels saturate; `exact_int8` None sets it there only. With VNNI the fast
    kernels are exact already, and the setting would swap them for uint8 x uint8 kernels that
    run the int8 model at 0.37-0.45 of its speed (measured on an Intel Xeon with AVX-512 VNNI:
    189 against 70 images/s, README int8). It changes nothing for fp32 models.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if exact_int8 if exact_int8 is not None else not has_vnni():
        options.add_session_config_entry(*EXACT_INT8_SETTING)
    return options


def has_vnni() -> bool:
    """Whether this CPU multiplies int8 exactly at full speed (knockoff.runtime.cpu)."""
    return cpu_features()["VNNI"]


@functools.cache
def cpu_features() -> dict[str, bool]:
    """The instruction sets that decide how int8 runs, as the CPU reports them (CPUID via numpy)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as numpy_features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as numpy_features
    flags = set(_proc_cpuinfo("flags").split())
    return {
        "AVX2": bool(numpy_features.get("AVX2")),
        "AVX-512": bool(numpy_features.get("AVX512F")),
        # numpy knows AVX512-VNNI; the 256-bit AVX-VNNI (Alder Lake and later) only the kernel does
        "VNNI": bool(numpy_features.get("AVX512VNNI")) or ("avx_vnni" in flags and _flags_describe_this_cpu(flags, numpy_features)),
    }


def _flags_describe_this_cpu(flags: set[str], numpy_features: dict[str, bool]) -> bool:
    """Whether the kernel's flags are this CPU's: they agree with CPUID on what both report.
    Under an emulator (QEMU's user mode) /proc/cpuinfo is the host's, not the emulated CPU's."""
    both_know = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI"}
    return all((flag in flags) == bool(numpy_features.get(feature)) for flag, feature in both_know.items())


def _proc_cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return ""


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
