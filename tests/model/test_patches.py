import numpy as np
import pytest

torch = pytest.importorskip("torch")

from knockoff.model.checkpoint import model_version
from knockoff.model.export import export_patches, model_info
from knockoff.model.patches import PatchFeatures
from knockoff.runtime.patches import PatchModel, patches_path
from tests.helpers import TINY_BACKBONES
from tests.model.test_embedder import tiny


@pytest.mark.parametrize("name", TINY_BACKBONES)
def test_patch_features_are_a_unit_grid_at_stride_16(name):
    model = tiny(name).eval()
    features = PatchFeatures(model).eval()(torch.zeros((2, 160, 160, 3), dtype=torch.uint8))
    assert features.shape == (2, 10, 10, PatchFeatures(model).channels)
    np.testing.assert_allclose(features.norm(dim=-1).detach().numpy(), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", TINY_BACKBONES)
def test_the_exported_patch_model_matches_torch_and_names_its_model(tmp_path, name):
    model = tiny(name).eval()
    info = model_info(model, model_version(model), "finetuned")
    path = patches_path(tmp_path / "m.onnx")
    assert path.name == "m.patches.onnx"
    patch_info = export_patches(model, info, path)
    loaded = PatchModel(path)
    assert loaded.info == patch_info and loaded.serves(info) and loaded.grid == 10
    images = np.random.default_rng(0).integers(0, 256, (3, 160, 160, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = PatchFeatures(model).eval()(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(loaded.features(images), expected, atol=1e-4)
    assert loaded.features(images[:0]).shape == (0, 10, 10, patch_info.embedding_dim)


def test_an_embedding_model_is_not_a_patch_model(tiny_onnx):
    with pytest.raises(ValueError, match="not a patch model"):
        PatchModel(tiny_onnx)
