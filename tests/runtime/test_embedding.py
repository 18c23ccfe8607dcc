import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from knockoff.cli import app
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.runtime.sessions import DeviceUnavailableError, providers_for
from tests.helpers import SAMPLE

no_cuda = pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                             reason="this onnxruntime has the CUDA provider")


def test_cpu_is_the_default_device(tiny_onnx):
    assert OnnxEmbedder(tiny_onnx).session.get_providers() == ["CPUExecutionProvider"]


@no_cuda
def test_cuda_without_onnxruntime_gpu_says_what_to_install(tiny_onnx):
    with pytest.raises(DeviceUnavailableError, match=r"pip install 'knockoff\[gpu\]'"):
        OnnxEmbedder(tiny_onnx, device="cuda")


@no_cuda
def test_screen_device_cuda_fails_clearly_before_screening(tiny_onnx, tiny_gallery, tmp_path):
    result = CliRunner().invoke(app, ["screen", str(SAMPLE / "uploads"), "--model", str(tiny_onnx), "--index",
                                      str(tiny_gallery), "--device", "cuda", "--out", str(tmp_path / "r.parquet")])
    assert result.exit_code == 1 and "CUDA provider" in result.output
    assert not (tmp_path / "r.parquet").exists()


def test_unknown_device_is_an_error():
    with pytest.raises(ValueError, match="cpu, cuda"):
        providers_for("tpu")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_model_is_one_clear_error(tiny_onnx, tmp_path, damage):
    data = tiny_onnx.read_bytes()
    broken = tmp_path / "model.onnx"
    broken.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00not a model" * 100, "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"model .*model.onnx is damaged .*: export it again"):
        OnnxEmbedder(broken)
