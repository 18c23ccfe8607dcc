"""The offline ImageNet weights: renamed onto timm, they load strictly and see shoes."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from knockoff.images.decode import load_rgb  # noqa: E402
from knockoff.model.pretrained import load_offline_weights, offline_weights_path, rename_to_timm  # noqa: E402
from tests.helpers import SAMPLE  # noqa: E402

# ImageNet classes: clog, cowboy boot, loafer, running shoe, sandal, shoe shop
FOOTWEAR = {502, 514, 630, 770, 774, 788}


def test_all_296_tensors_map_onto_timm_names():
    model = timm.create_model("tf_efficientnet_lite0")
    state_dict = torch.load(offline_weights_path("tf_efficientnet_lite0"), map_location="cpu", weights_only=True)
    renamed = rename_to_timm(state_dict, model)
    assert len(state_dict) == len(renamed) == 296
    assert set(renamed) == set(model.state_dict())
    assert all(renamed[k].shape == v.shape for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_loads_strictly_and_recognises_sneakers(name):
    model = timm.create_model(name)
    load_offline_weights(model, name)  # strict=True inside
    size = timm.data.resolve_model_data_config(model)["input_size"][-1]
    photos = sorted((SAMPLE / "sneakers").glob("*/images/*.jpg"))[:40]
    pixels = np.stack([load_rgb(p, size) for p in photos])
    inputs = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1  # mean = std = 0.5
    with torch.no_grad():
        top5 = model.eval()(inputs).topk(5).indices.tolist()
    share = np.mean([bool(FOOTWEAR & set(classes)) for classes in top5])
    assert share >= 0.6  # random weights: 0.0; the lite0 weights: ~0.7


def test_headless_model_skips_the_classifier():
    model = timm.create_model("tf_efficientnet_lite0", num_classes=0)
    load_offline_weights(model, "tf_efficientnet_lite0")
    assert model.num_features == 1280


def test_unknown_model_says_what_is_available():
    with pytest.raises(ValueError, match="tf_efficientnet_lite0"):
        offline_weights_path("resnet50")
