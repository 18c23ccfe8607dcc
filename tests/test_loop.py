"""The retraining loop, end to end: screen -> an analyst confirms a fake in the review app ->
decisions export -> (live) index add -> retrain a few steps -> re-index -> re-screen.

Real lite0 weights, onnxruntime, FAISS, SQLite and the FastAPI app. The confirmed fake is
the one the first model found least suspicious; afterwards it must score higher.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")


from knockoff_serve.app import create_app  # noqa: E402
from knockoff_serve.auth import add_user  # noqa: E402
from knockoff_serve.confirmed import export_confirmed  # noqa: E402
from knockoff_serve.runs import import_results  # noqa: E402
from knockoff_serve.settings import Settings  # noqa: E402
from knockoff_serve.store import closing, connect, initialize  # noqa: E402

from knockoff.data.prepare import PrepareConfig, prepare  # noqa: E402
from knockoff.data.roboflow import read_roboflow  # noqa: E402
from knockoff.gallery.indexing import IndexConfig, add_references, index  # noqa: E402
from knockoff.model.export import ExportConfig, run_export  # noqa: E402
from knockoff.model.training import TrainConfig, train  # noqa: E402
from knockoff.scoring import ScorerParams  # noqa: E402
from knockoff.screening.screen import screen  # noqa: E402
from tests.helpers import SAMPLE  # noqa: E402
from tests.serve.conftest import PASSWORD, login  # noqa: E402

pytestmark = pytest.mark.slow


def build_model(work: Path, name: str, prepared: Path) -> tuple[Path, Path]:
    """Train a few steps, export, index (references + confirmed), calibrate on valid."""
    train_sources = (str(prepared / "train.parquet"), str(prepared / "confirmed.parquet"))
    config = TrainConfig(epochs=1, max_steps_per_epoch=4, batch_size=8, workers=0, train=train_sources,
                         val_gallery=(str(prepared / "train.parquet"),), val_queries=(str(prepared / "valid.parquet"),))
    train(config, work / f"{name}.pt")
    run_export(ExportConfig(), work / f"{name}.onnx", work / f"{name}.pt", None)
    index(IndexConfig(references=train_sources, calibration=str(prepared / "valid.parquet"), scorer=ScorerParams(k=5, candidates=20)),
          work / f"{name}.onnx", work / f"{name}-gallery")
    return work / f"{name}.onnx", work / f"{name}-gallery"


def scores(results: Path) -> dict[str, float]:
    return {row["listing_id"]: row["score"] for row in pq.read_table(results).to_pylist()}


def test_a_confirmed_fake_scores_higher_after_the_loop(tmp_path, monkeypatch, capsys):
    # A data root with the sample's train split and half of its valid split; the other half
    # of valid is "tonight's crawl", which neither model nor gallery has seen.
    root = tmp_path / "datasets" / "sneakers"
    shutil.copytree(SAMPLE / "sneakers" / "train", root / "train")
    shutil.copy(SAMPLE / "sneakers" / "data.yaml", root / "data.yaml")
    valid = list(read_roboflow(SAMPLE / "sneakers", "valid"))
    truth = {}
    for i, record in enumerate(valid):
        photo = Path(record.path)
        if i % 2:
            target = tmp_path / "crawl" / photo.name
            truth[photo.stem] = record.authenticity
        else:
            target = root / "valid" / "images" / photo.name
            (root / "valid" / "labels").mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / "sneakers" / "valid" / "labels" / f"{photo.stem}.txt", root / "valid" / "labels")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target)
    monkeypatch.setenv("KNOCKOFF_DATA", str(tmp_path / "datasets"))
    monkeypatch.chdir(tmp_path)  # the repository: data/confirmed lives here
    sources = PrepareConfig(sources={"train": "sneakers/train", "valid": "sneakers/valid"},
                            optional_sources={"confirmed": "data/confirmed/manifest.parquet"})

    # 1. the first model screens the crawl
    prepare(sources, tmp_path / "datasets", tmp_path / "prepared")
    model, gallery = build_model(tmp_path, "first", tmp_path / "prepared")
    screen([str(tmp_path / "crawl")], tmp_path / "first.parquet", model, gallery)
    before = scores(tmp_path / "first.parquet")

    # 2. an analyst confirms, in the review app, the fake the model found least suspicious
    settings = Settings(home=tmp_path / "home", data_root=tmp_path / "datasets", model=model, gallery=gallery,
                        image_roots=(tmp_path,))
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        import_results(connection, tmp_path / "first.parquet")
        add_user(connection, "ana", "analyst", PASSWORD)
    app = create_app(settings)
    client, csrf = login(app, "ana")
    items = client.get("/api/items", params={"limit": 100}).json()["items"]
    missed = min((item for item in items if truth[item["listing_id"]] == "fake" and item["score"] is not None),
                 key=lambda item: item["score"])
    decided = client.post(f"/api/items/{missed['id']}/decision", json={"decision": "counterfeit", "note": "wrong swoosh"},
                          headers={"X-CSRF-Token": csrf})
    assert decided.status_code == 200

    # 3. export the decision; the live gallery learns it at once, without retraining
    with closing(connect(settings.database)) as connection:
        summary = export_confirmed(connection, tmp_path / "data" / "confirmed")
    assert summary.fakes == 1
    photo = next(tmp_path.joinpath("crawl").glob(f"{missed['listing_id']}.*"))
    live_before = client.post("/api/score", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, headers={"X-CSRF-Token": csrf}).json()
    added = add_references(model, gallery, ["data/confirmed/manifest.parquet"])
    assert added.added == 1
    app.state.scorer.check_every_s = 0.0  # do not wait for the service's next check
    live_after = client.post("/api/score", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, headers={"X-CSRF-Token": csrf}).json()
    assert live_after["index_version"] != live_before["index_version"]
    assert live_after["score"] > live_before["score"]

    # 4. the next model trains on it and holds it as a known fake
    summary = prepare(sources, tmp_path / "datasets", tmp_path / "prepared")
    assert summary["confirmed"]["images"] == 1
    model, gallery = build_model(tmp_path, "second", tmp_path / "prepared")
    screen([str(tmp_path / "crawl")], tmp_path / "second.parquet", model, gallery)
    after = scores(tmp_path / "second.parquet")

    listing = missed["listing_id"]
    with capsys.disabled():
        print(f"\nconfirmed fake {listing}: score {before[listing]:.3f} before -> {live_after['score']:.3f} after `index add` "
              f"-> {after[listing]:.3f} after retraining")
    assert after[listing] > before[listing]
    assert after[listing] >= pq.read_table(tmp_path / "second.parquet").to_pylist()[0]["threshold"]  # now flagged
