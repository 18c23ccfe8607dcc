"""Which exported model screens: fp32, or int8 where int8 pays.

int8 runs at twice the fp32 speed on a CPU with VNNI (AVX512-VNNI, AVX-VNNI), where
onnxruntime's uint8 x int8 kernels are exact. Without VNNI those kernels saturate, and the
exact kernels Knockoff switches to there run slower than fp32 (knockoff.runtime.quantize), so
int8 would buy nothing but error: there Knockoff screens with the fp32 model and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from knockoff.runtime.quantize import int8_path
from knockoff.runtime.sessions import has_vnni

PRECISIONS = ("fp32", "int8", "auto")


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    precision: str  # fp32 | int8: what screens
    note: str | None  # why, when it is not what was asked for


def choose_model(model: Path, precision: str, vnni: bool | None = None) -> ModelChoice:
    """The model file to screen with. `model` is the fp32 export (or its int8 sibling);
    `precision` fp32, int8 (the int8 sibling where this CPU runs it faster, else fp32 with a
    note) or auto (int8 where it pays and exists, else fp32, silently)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    model = Path(model)
    fp32 = model.with_name(model.name.replace(".int8.onnx", ".onnx")) if model.name.endswith(".int8.onnx") else model
    int8 = int8_path(fp32)
    if model == int8 and precision == "fp32":
        precision = "int8"  # an int8 file named outright: asked for int8
    if precision == "fp32":
        return ModelChoice(fp32, "fp32", None)
    fast = has_vnni() if vnni is None else vnni
    if not int8.is_file():
        note = None if precision == "auto" else f"no int8 model at {int8} (`knockoff export --int8`): screening with fp32"
        return ModelChoice(fp32, "fp32", note)
    if fast:
        return ModelChoice(int8, "int8", None)
    note = None if precision == "auto" else (
        "int8 falls back to fp32 on this CPU: without VNNI, onnxruntime's exact int8 kernels run slower than fp32 "
        "(and its fast ones saturate), so int8 would cost accuracy and buy no speed")
    return ModelChoice(fp32, "fp32", note)
