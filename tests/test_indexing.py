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
    # 48 references, then the 32 calibration photos join once calibration is fit
    assert loaded.info.version == gallery.info.version and loaded.info.count == 80
    assert loaded.info.sources == ["sneakers/train", "sneakers/valid"]
    assert loaded.info.index_factory == "HNSW8,Flat"
    assert loaded.references.column("path").to_pylist()[0].startswith("sneakers/train/images/")
    calibration = loaded.info.calibration
    assert calibration.count == 32 and calibration.source == "sneakers/valid"
    assert 0.0 <= calibration.threshold and calibration.target_precision == 0.95


def test_calibration_photos_can_stay_out_of_the_gallery(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/valid", add_calibration_photos=False)
    assert index(config, tiny_onnx, tmp_path / "g").info.count == 48


def test_calibrating_on_references_is_refused(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/train")
    with pytest.raises(ValueError, match="calibration photos are also references"):
        index(config, tiny_onnx, tmp_path / "g")


def test_unlabelled_references_are_skipped(tiny_onnx, tmp_path, sample_root, capsys):
    config = IndexConfig(references=("sneakers/valid", str(SAMPLE / "uploads")))
    gallery = index(config, tiny_onnx, tmp_path / "g")
    assert gallery.info.count == 32 and gallery.info.calibration is None
    assert "skipping 1 images without a genuine/fake label" in capsys.readouterr().out
