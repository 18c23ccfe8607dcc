import numpy as np
import pytest

pytest.importorskip("albumentations")

from knockoff.images.decode import load_rgb  # noqa: E402
from knockoff.model.augment import AugmentParams, augment_image, build_augment, load_size  # noqa: E402


def test_output_is_model_sized_uint8_and_varies(sample_photos):
    image = load_rgb(sample_photos[0], load_size(96))
    pipeline = build_augment(96, AugmentParams())
    pipeline.set_random_seed(0)
    outputs = [augment_image(pipeline, image) for _ in range(4)]
    assert all(o.shape == (96, 96, 3) and o.dtype == np.uint8 for o in outputs)
    assert len({o.tobytes() for o in outputs}) == 4


def test_seeded_pipelines_repeat(sample_photos):
    image = load_rgb(sample_photos[1], load_size(64))
    first, second = build_augment(64, AugmentParams()), build_augment(64, AugmentParams())
    first.set_random_seed(7)
    second.set_random_seed(7)
    np.testing.assert_array_equal(augment_image(first, image), augment_image(second, image))
