"""End to end on the bundled sample: prepare -> train a few steps -> export -> index -> screen.

Real tf_efficientnet_lite0 with its offline ImageNet weights, real onnxruntime, real FAISS,
and broken inputs among the listings. Screening runs a second time in a subprocess where
importing torch is impossible, and must give the same rows.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")

from knockoff.data.prepare import PrepareConfig, prepare  # noqa: E402
from knockoff.gallery.indexing import IndexConfig, index  # noqa: E402
from knockoff.model.export import ExportConfig, run_export  # noqa: E402
from knockoff.model.training import TrainConfig, train  # noqa: E402
from knockoff.scoring import ScorerParams  # noqa: E402
from knockoff.screening.screen import screen  # noqa: E402
from tests.helpers import REPO, SAMPLE  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    prepared = work / "prepared"
    prepare(PrepareConfig(sources={"train": "sneakers/train", "valid": "sneakers/valid"}), SAMPLE, prepared)
    config = TrainConfig(
        epochs=1, max_steps_per_epoch=3, batch_size=8, workers=0,
        train=(str(prepared / "train.parquet"),),
        val_gallery=(str(prepared / "train.parquet"),),
        val_queries=(str(prepared / "valid.parquet"),),
    )
    best = train(config, work / "checkpoint.pt")
    info, difference = run_export(ExportConfig(check_images=str(prepared / "valid.parquet"), check_count=4),
                                  work / "model.onnx", work / "checkpoint.pt", None)
    gallery = index(
        IndexConfig(references=(str(prepared / "train.parquet"),), calibration=str(prepared / "valid.parquet"),
                    scorer=ScorerParams(k=5, candidates=20)),
        work / "model.onnx", work / "gallery",
    )
    broken = work / "listings" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    summary = screen([str(SAMPLE / "listings.csv"), str(broken.parent)], work / "results.parquet",
                     work / "model.onnx", work / "gallery")
    yield {"work": work, "best": best, "info": info, "difference": difference, "gallery": gallery, "summary": summary}
    monkeypatch.undo()


def test_training_validates_and_keeps_a_checkpoint(pipeline):
    best = pipeline["best"]
    assert (pipeline["work"] / "checkpoint.pt").is_file()
    assert 0.0 <= best["roc_auc"] <= 1.0 and best["product_top1"] > 0.5
    assert best["train_loss"] > 0


def test_export_parity(pipeline):
    assert pipeline["difference"] <= 1e-4
    assert pipeline["info"].name == "tf_efficientnet_lite0" and pipeline["info"].input_size == 224


def test_gallery_belongs_to_the_model_and_is_calibrated(pipeline):
    gallery = pipeline["gallery"]
    assert gallery.info.model_version == pipeline["info"].version
    assert gallery.info.count == 48
    calibration = gallery.info.calibration
    # the sample's augmented copies of train photos in valid find themselves: left out
    assert calibration is not None and calibration.count == 32 - len(gallery.info.excluded_copies)
    assert 0 < len(gallery.info.excluded_copies) < 32


def test_screening_has_a_row_for_every_input_and_keeps_going(pipeline):
    rows = pq.read_table(pipeline["work"] / "results.parquet").to_pylist()
    summary = pipeline["summary"]
    assert len(rows) == summary.screened == 34  # 33 manifest rows + 1 broken file
    failed = {r["listing_id"]: r["error"] for r in rows if r["error"]}
    assert set(failed) == {"L2000", "broken"} and summary.failed == 2
    assert "truncated" in failed["L2000"]
    for row in rows:
        if row["error"]:
            assert row["score"] is None and row["flagged"] is None and row["status"] == "error"
            continue
        assert row["status"] in ("scored", "no_match", "unsupported", "copy")
        if row["reference_copy"]:  # a copy of a reference: its verdict says which, and why
            assert "copies the" in row["status_reason"] and row["reference_copy"] in row["status_reason"]
            assert row["flagged"] == (row["status"] == "scored")
            # a copy of a genuine reference keeps its product's score, none where its claimed product could not be judged
            assert row["score"] is None and row["status"] == "copy" or 0.0 <= row["score"] <= 1.0
        elif row["status"] == "scored":
            assert 0.0 <= row["score"] <= 1.0 and row["status_reason"] is None
            assert row["flagged"] == (row["score"] >= row["threshold"])
        else:  # not judged: never flagged, and the row says why
            assert row["score"] is None and row["flagged"] is False and row["status_reason"]
        assert row["product"] in ("nike air force", "nike jordan 1")
        # judged against the claim; the mismatch is with what the photo looks like
        assert row["product"] == row["claimed_product"]
        assert row["product_mismatch"] == (row["claimed_product"] != row["matched_product"])
        assert 1 <= len(row["neighbors"]) <= 5 and all(e["product"] == row["product"] for e in row["neighbors"])
        assert all(e["product"] == row["product"] for e in row["nearest_genuine"] + row["nearest_fake"])
        assert all(e["authenticity"] == "genuine" for e in row["nearest_genuine"])
        assert all(e["authenticity"] == "fake" for e in row["nearest_fake"])
        assert row["model_version"] == pipeline["info"].version
    assert summary.flagged == sum(bool(r["flagged"]) for r in rows)


def test_screening_runs_without_torch_and_gives_the_same_rows(pipeline, tmp_path):
    work = pipeline["work"]
    out = tmp_path / "again.jsonl"
    # sys.modules['torch'] = None makes every `import torch` fail.
    command = ("import sys; sys.modules['torch'] = None; from knockoff.cli import app; "
               f"app([ 'screen', {str(SAMPLE / 'listings.csv')!r}, {str(work / 'listings')!r}, '--out', {str(out)!r}, "
               f"'--model', {str(work / 'model.onnx')!r}, '--index', {str(work / 'gallery')!r}])")
    result = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "screened 34 images" in result.stdout and "2 failed" in result.stdout
    again = [json.loads(line) for line in out.read_text().splitlines()]
    first = pq.read_table(work / "results.parquet").to_pylist()
    assert [r["listing_id"] for r in again] == [r["listing_id"] for r in first]
    for a, b in zip(again, first):
        assert (a["score"] is None) == (b["score"] is None)
        if a["score"] is not None:
            assert a["score"] == pytest.approx(b["score"], abs=1e-6) and a["product"] == b["product"]
