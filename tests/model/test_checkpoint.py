import pytest

torch = pytest.importorskip("torch")

from knockoff.model.checkpoint import load_checkpoint, model_version, save_checkpoint  # noqa: E402
from tests.model.test_embedder import tiny  # noqa: E402


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = tiny("test_efficientnet", frozen_levels=1).eval()
    version = save_checkpoint(tmp_path / "c.pt", model, classes=["a", "b"], metrics={"roc_auc": 0.9})
    loaded, extra = load_checkpoint(tmp_path / "c.pt")
    images = torch.randint(0, 256, (2, 160, 160, 3), dtype=torch.uint8)
    torch.testing.assert_close(loaded(images), model(images))
    assert loaded.config == model.config
    assert extra["version"] == version == model_version(loaded)
    assert extra["classes"] == ["a", "b"] and not loaded.training


def test_version_follows_the_weights():
    model = tiny("test_resnet")
    before = model_version(model)
    assert model_version(model) == before
    with torch.no_grad():
        next(model.head.parameters()).add_(1e-3)
    assert model_version(model) != before
