import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from knockoff.model.checkpoint import model_version  # noqa: E402
from knockoff.model.export import ParityError, export_onnx, model_info, parity  # noqa: E402
from knockoff.runtime.embedding import ModelInfo, OnnxEmbedder  # noqa: E402
from tests.helpers import TINY_BACKBONES  # noqa: E402
from tests.model.test_embedder import tiny  # noqa: E402


@pytest.mark.parametrize("name", TINY_BACKBONES)
def test_export_matches_torch_within_tolerance(tmp_path, name):
    model = tiny(name).eval()
    info = model_info(model, model_version(model), "finetuned")
    difference = export_onnx(model, info, tmp_path / "m.onnx")
    assert difference <= 1e-4
    rng = np.random.default_rng(1)
    for batch in (1, 5):  # the batch axis is dynamic
        images = rng.integers(0, 256, (batch, 160, 160, 3), dtype=np.uint8)
        assert parity(model, tmp_path / "m.onnx", images) <= 1e-4


def test_metadata_describes_the_model(tmp_path):
    model = tiny("test_efficientnet", embedding_dim=None).eval()
    info = model_info(model, model_version(model), "pretrained")
    export_onnx(model, info, tmp_path / "m.onnx")
    assert OnnxEmbedder(tmp_path / "m.onnx").info == info
    metadata = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert metadata["knockoff.input_size"] == "160" and metadata["knockoff.name"] == "test_efficientnet"
    graph_input = onnx.load(tmp_path / "m.onnx").graph.input[0]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8


def test_parity_failure_keeps_no_file(tmp_path):
    model = tiny("test_resnet").eval()
    with pytest.raises(ParityError):
        export_onnx(model, model_info(model, "v", "finetuned"), tmp_path / "m.onnx", tolerance=-1.0)
    assert not any(tmp_path.iterdir())


def test_embedder_rejects_wrong_input_shapes(tmp_path):
    model = tiny("test_resnet").eval()
    export_onnx(model, model_info(model, "v", "finetuned"), tmp_path / "m.onnx")
    embedder = OnnxEmbedder(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="expected uint8 images"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.uint8))
    assert embedder.embed(np.zeros((0, 160, 160, 3), np.uint8)).shape == (0, 16)


def test_non_knockoff_onnx_is_refused(tmp_path):
    model = tiny("test_resnet").eval()
    export_onnx(model, model_info(model, "v", "finetuned"), tmp_path / "m.onnx")
    proto = onnx.load(tmp_path / "m.onnx")
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "plain.onnx")
    with pytest.raises(ValueError, match="not a Knockoff export"):
        OnnxEmbedder(tmp_path / "plain.onnx")
    assert isinstance(OnnxEmbedder(tmp_path / "m.onnx").info, ModelInfo)
