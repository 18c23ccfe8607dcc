import pytest

torch = pytest.importorskip("torch")

from knockoff.model.backbone import create_backbone, frozen_module_names  # noqa: E402
from knockoff.model.embedder import EmbedderConfig, create_embedder  # noqa: E402
from tests.helpers import TINY_BACKBONES  # noqa: E402


def tiny(name: str, **overrides):
    return create_embedder(EmbedderConfig(backbone=name, **{"embedding_dim": 16, **overrides}), pretrained="none")


@pytest.mark.parametrize("name", TINY_BACKBONES)
@pytest.mark.parametrize("embedding_dim", [16, None])
def test_uint8_images_in_unit_embeddings_out(name, embedding_dim):
    model = tiny(name, embedding_dim=embedding_dim).eval()
    size = model.config.input_size
    images = torch.randint(0, 256, (3, size, size, 3), dtype=torch.uint8)
    embeddings = model(images)
    expected_dim = embedding_dim or model.backbone.num_features
    assert embeddings.shape == (3, expected_dim) and model.embedding_dim == expected_dim
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(model.forward_head(model.forward_features(images)), embeddings)


@pytest.mark.parametrize("name", TINY_BACKBONES)
def test_preprocessing_comes_from_the_backbone(name):
    model = tiny(name)
    assert model.config.input_size == 160 and len(model.config.mean) == 3


def test_normalisation_matches_mean_and_std():
    model = tiny("test_efficientnet")
    images = torch.full((1, 4, 4, 3), 255, dtype=torch.uint8)
    expected = (1.0 - torch.tensor(model.config.mean)) / torch.tensor(model.config.std)
    torch.testing.assert_close(model.normalize(images)[0, :, 0, 0], expected)


@pytest.mark.parametrize("name", TINY_BACKBONES)
def test_frozen_levels_get_no_gradient_and_keep_batchnorm_statistics(name):
    model = tiny(name, frozen_levels=2).train()
    frozen = set(frozen_module_names(model.backbone, 2))
    assert frozen
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    size = model.config.input_size
    model(torch.randint(0, 256, (4, size, size, 3), dtype=torch.uint8)).sum().backward()
    for name_, parameter in model.backbone.named_parameters():
        owner = name_.rsplit(".", 1)[0]
        assert (parameter.grad is None) == (owner in frozen), name_
    for name_, value in model.backbone.state_dict().items():
        if name_.rsplit(".", 1)[0] in frozen and "running" in name_:
            torch.testing.assert_close(value, before[name_])  # eval-mode BN: stats untouched


def test_bad_pretrained_source_is_an_error():
    with pytest.raises(ValueError, match="offline"):
        create_backbone("test_resnet", pretrained="internet")
