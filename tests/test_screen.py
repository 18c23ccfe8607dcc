import json
import shutil

import pyarrow.parquet as pq
import pytest

from knockoff.gallery import Gallery, ModelMismatchError
from knockoff.indexing import IndexConfig, index
from knockoff.screen import screen
from tests.helpers import SAMPLE, write_image


@pytest.fixture
def tiny_gallery(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "gallery")
    return tmp_path / "gallery"


def test_folder_glob_and_manifest_inputs_each_give_rows(tiny_onnx, tiny_gallery, tmp_path):
    folder = tmp_path / "crawl"
    for i, photo in enumerate(sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:3]):
        (folder / f"shop{i}").mkdir(parents=True)
        shutil.copy(photo, folder / f"shop{i}" / photo.name)
    write_image(tmp_path / "extra" / "a.png")
    summary = screen([str(folder), str(tmp_path / "extra" / "*.png"), str(SAMPLE / "listings.csv")],
                     tmp_path / "out.jsonl", tiny_onnx, tiny_gallery)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == summary.screened == 3 + 1 + 33
    assert summary.failed == 1 and summary.flagged == sum(bool(r["flagged"]) for r in rows)
    assert rows[0]["listing_id"].startswith("shop0/") and rows[3]["listing_id"] == "a"
    assert {r["model_version"] for r in rows} == {summary.model_version}
    assert "screened 37 images" in summary.line() and "1 failed" in summary.line()


def test_gallery_of_another_model_is_refused(tiny_onnx, tiny_gallery, tmp_path):
    info = json.loads((tiny_gallery / "gallery.json").read_text())
    info["model_version"] = "someone-else"
    (tiny_gallery / "gallery.json").write_text(json.dumps(info))
    with pytest.raises(ModelMismatchError):
        screen([str(SAMPLE / "listings.csv")], tmp_path / "r.parquet", tiny_onnx, tiny_gallery)
    assert not (tmp_path / "r.parquet").exists()


def test_uncalibrated_gallery_is_refused(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",)), tiny_onnx, tmp_path / "raw-gallery")
    with pytest.raises(ValueError, match="no calibration"):
        screen([str(SAMPLE / "listings.csv")], tmp_path / "r.parquet", tiny_onnx, tmp_path / "raw-gallery")


def test_results_carry_versions_in_file_metadata(tiny_onnx, tiny_gallery, tmp_path):
    summary = screen([str(SAMPLE / "uploads")], tmp_path / "r.parquet", tiny_onnx, tiny_gallery)
    metadata = pq.read_schema(tmp_path / "r.parquet").metadata
    assert metadata[b"knockoff.index_version"].decode() == Gallery.load(tiny_gallery).info.version == summary.index_version
    assert summary.failed == 1 and summary.screened == 1
