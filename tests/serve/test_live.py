from pathlib import Path

import pytest
from knockoff_serve.live import LiveScorer, ScorerUnavailable

from knockoff.gallery.indexing import IndexConfig, index
from knockoff.gallery.store import Gallery
from tests.helpers import SAMPLE


@pytest.fixture
def gallery_dir(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "gallery")
    return tmp_path / "gallery"


def test_a_new_gallery_is_picked_up_without_a_restart(tiny_onnx, gallery_dir):
    scorer = LiveScorer(tiny_onnx, gallery_dir, check_every_s=0.0)
    before = scorer.snapshot()
    gallery = Gallery.load(gallery_dir)
    from knockoff.data import read_source
    from knockoff.runtime.embedding import OnnxEmbedder, embed_records

    embedder = OnnxEmbedder(tiny_onnx)
    records = list(read_source(str(SAMPLE / "sneakers" / "valid")))[:4]
    embeddings, kept, _ = embed_records(embedder, records)
    gallery.add(embeddings, kept, source="confirmed")
    gallery.save(gallery_dir)
    after = scorer.snapshot()
    assert after.gallery.info.version != before.gallery.info.version and after.gallery.info.count == 52
    assert before.gallery.info.count == 48  # a request holding the old snapshot keeps it whole


def test_a_gallery_for_another_model_keeps_the_old_pair(tiny_onnx, gallery_dir, tmp_path):
    scorer = LiveScorer(tiny_onnx, gallery_dir, check_every_s=0.0)
    before = scorer.snapshot()
    info = (gallery_dir / "gallery.json").read_text()
    (gallery_dir / "gallery.json").write_text(info.replace(before.embedder.info.version, "another-model"))
    assert scorer.snapshot() is before
    assert "built with model another-model" in scorer.last_error


def test_no_model_is_unavailable(tmp_path):
    with pytest.raises(ScorerUnavailable):
        LiveScorer(tmp_path / "missing.onnx", tmp_path / "gallery").snapshot()


def test_a_live_score_carries_the_regions_screening_writes(tiny_onnx, gallery_dir, tmp_path):
    """The service's score of a photo is the screening's row, local evidence included."""
    import pyarrow.parquet as pq

    from knockoff.screening.screen import screen

    screen([str(SAMPLE / "listings.csv")], tmp_path / "r.parquet", tiny_onnx, gallery_dir)  # listings claim their product
    rows = [row for row in pq.read_table(tmp_path / "r.parquet").to_pylist() if not row["error"]]
    snapshot = LiveScorer(tiny_onnx, gallery_dir, check_every_s=0.0).snapshot()
    assert snapshot.local is not None
    judged = 0
    for row in rows:
        live = snapshot.score(Path(row["path"]).read_bytes(), row["listing_id"], claimed=row["claimed_product"])
        assert live["status"] == row["status"]
        if row["status"] == "scored":
            judged += 1
            assert [r["reference_path"] for r in live["regions"]] == [r["reference_path"] for r in row["regions"]]
        else:
            assert live["regions"] is None
    assert judged >= 1  # the seeded tiny model judges some of the listings (deterministic)
