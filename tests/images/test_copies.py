import io

import pytest
from PIL import Image, ImageDraw, ImageOps

pytest.importorskip("cv2")

from knockoff.images.copies import features, grey_thumbnail, verify  # noqa: E402


def _jpeg(image: Image.Image, quality: int = 60) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _features(data: bytes):
    return features(grey_thumbnail(data))


def test_an_edited_copy_is_a_copy_and_another_photo_of_the_product_is_not(sample_photos):
    original = Image.open(sample_photos[0])
    width, height = original.size
    edited = ImageOps.mirror(original.crop((40, 30, width - 60, height - 50))).resize((300, 300))
    ImageDraw.Draw(edited).rectangle((0, 260, 300, 300), fill=(255, 0, 0))  # a caption bar
    reference = _features(sample_photos[0].read_bytes())
    copy = verify(reference, _features(_jpeg(edited)))
    assert copy.copy and copy.mirrored and copy.correlation > 0.95
    others = [verify(reference, _features(p.read_bytes())) for p in sample_photos[1:8]]
    assert not any(v.copy for v in others), [(v.inliers, round(v.correlation, 3)) for v in others]


def test_a_blank_or_featureless_photo_is_never_a_copy():
    blank = _features(_jpeg(Image.new("RGB", (200, 200), (128, 128, 128))))
    assert not verify(blank, blank).copy  # no keypoints: nothing to agree on


def test_the_copy_checker_verifies_each_pair_once_and_never_calls_an_unreadable_photo_a_copy(tmp_path, sample_photos, monkeypatch):
    from knockoff.images import copies

    calls = []
    real_verify = copies.verify
    monkeypatch.setattr(copies, "verify", lambda a, b, **kw: calls.append(1) or real_verify(a, b, **kw))
    original = str(sample_photos[0])
    mirrored = tmp_path / "mirrored.jpg"
    ImageOps.mirror(Image.open(original)).save(mirrored, quality=90)
    checker = copies.CopyChecker()
    assert checker.is_copy(original, str(mirrored)) and checker.is_copy(original, str(mirrored))
    assert len(calls) == 1  # the second verdict came from the cache
    assert checker.is_copy(original, original) and len(calls) == 1  # the very same path: no look
    assert not checker.is_copy(original, str(tmp_path / "missing.jpg"))
