import pytest

from knockoff.gallery import Gallery
from knockoff.indexing import IndexConfig, index
from tests.helpers import SAMPLE


@pytest.fixture
def sample_root(monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))


def test_index_builds_saves_and_calibrates(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(factory="HNSW8,Flat", references=("sneakers/train",), calibration="sneakers/valid")
    gallery = index(config, tiny_onnx, tmp_path / "g")
    loaded = Gallery.load(tmp_path / "g")
    assert loaded.info.version == gallery.info.version and loaded.info.count == 48
    assert loaded.info.sources == ["sneakers/train"]
    assert loaded.info.index_factory == "HNSW8,Flat"
    assert loaded.references.column("path").to_pylist()[0].startswith("sneakers/train/images/")
    calibration = loaded.info.calibration
    assert calibration.count == 32 and calibration.source == "sneakers/valid"
    assert 0.0 <= calibration.threshold and calibration.target_precision == 0.95


def test_calibration_photos_can_join_the_gallery_after_calibrating(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/valid", add_calibration_photos=True)
    gallery = index(config, tiny_onnx, tmp_path / "g")
    assert gallery.info.count == 48 + 32 and gallery.info.sources == ["sneakers/train", "sneakers/valid"]
    assert gallery.info.calibration.count == 32  # fit before they joined


def test_calibrating_on_references_is_refused(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/train")
    with pytest.raises(ValueError, match="calibration photos are also references"):
        index(config, tiny_onnx, tmp_path / "g")


def test_unlabelled_references_are_skipped(tiny_onnx, tmp_path, sample_root, capsys):
    config = IndexConfig(references=("sneakers/valid", str(SAMPLE / "uploads")))
    gallery = index(config, tiny_onnx, tmp_path / "g")
    assert gallery.info.count == 32 and gallery.info.calibration is None
    assert "skipping 1 images without a genuine/fake label" in capsys.readouterr().out
