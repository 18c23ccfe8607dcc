"""The int8 model's patch model: quantized alike, found beside it, and served by the fp32 patch banks."""

from knockoff.runtime.patches import PatchModel, patches_path
from knockoff.runtime.quantize import calibration_images, quantize_int8
from knockoff.screening.local import LocalEvidence
from tests.helpers import SAMPLE


def test_an_int8_patch_model_serves_the_fp32_patch_banks_and_is_found_beside_the_int8_model(tiny_onnx, tiny_gallery, tmp_path):
    from knockoff.gallery.store import Gallery

    fp32_patches = patches_path(tiny_onnx)
    int8_model = tmp_path / "tiny.int8.onnx"
    assert patches_path(int8_model) == tmp_path / "tiny.patches.onnx"  # none of its own: the fp32 one's name
    images = calibration_images([str(SAMPLE / "sneakers" / "train")], 16, PatchModel(fp32_patches).info.input_size)
    quantize_int8(fp32_patches, tmp_path / "tiny.int8.patches.onnx", images)
    assert patches_path(int8_model) == tmp_path / "tiny.int8.patches.onnx"
    quantized = PatchModel(tmp_path / "tiny.int8.patches.onnx")
    fp32 = PatchModel(fp32_patches)
    assert quantized.info.precision == "int8" and fp32.info.version in quantized.versions
    LocalEvidence(quantized, Gallery.load(tiny_gallery))  # the banks built with the fp32 patch model serve it
    features = quantized.features(images[:4])
    assert features.shape == fp32.features(images[:4]).shape
    assert ((features * fp32.features(images[:4])).sum(-1).mean()) > 0.9
