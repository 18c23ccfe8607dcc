"""A real review app on a real SQLite file, with results that point at the bundled photos."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from knockoff_serve.app import create_app  # noqa: E402
from knockoff_serve.auth import add_user  # noqa: E402
from knockoff_serve.runs import import_results  # noqa: E402
from knockoff_serve.settings import Settings  # noqa: E402
from knockoff_serve.store import closing, connect, initialize  # noqa: E402

from knockoff.data.catalogue import Catalogue, CatalogueProduct  # noqa: E402
from knockoff.listings.signals import PRICE_BANDS, REUSE_KINDS, SignalRatios  # noqa: E402
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores  # noqa: E402
from knockoff.screening.results import RESULT_SCHEMA, ResultWriter  # noqa: E402
from tests.helpers import SAMPLE  # noqa: E402

PASSWORD = "correct horse battery"
PHOTOS = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))
REFERENCES = sorted((SAMPLE / "sneakers" / "train" / "images").glob("*.jpg"))


def region(x: float, y: float, distance: float, side: str, reference: Path) -> dict:
    """A region of local evidence around (x, y), matched at the middle of `reference`."""
    return {"x0": x - 0.075, "y0": y - 0.075, "x1": x + 0.075, "y1": y + 0.075, "distance": distance,
            "reference_path": str(reference.relative_to(SAMPLE)), "ref_x0": 0.425, "ref_y0": 0.425, "ref_x1": 0.575,
            "ref_y1": 0.575, "side": side}


def result_rows(count: int, products: tuple[str, ...] = ("nike air force", "nike jordan 1")) -> list[dict]:
    """Screening rows with real photos and evidence; every 7th row failed to screen."""
    rows = []
    for i in range(count):
        row = dict.fromkeys(RESULT_SCHEMA.names)
        photo = PHOTOS[i % len(PHOTOS)]
        row.update(listing_id=f"L{i:05d}", path=str(photo), source="test", model_version="model-a", index_version="gallery-a",
                   threshold=0.5, claimed_product=products[(i + 1) % len(products)])
        if i % 7 == 6:
            row["error"] = f"cannot decode {photo.name}: truncated"
        else:
            score = ((i * 37) % 100) / 100
            reference = lambda j, kind: {"row": j, "similarity": 0.9 - 0.01 * j, "path": str(REFERENCES[j % len(REFERENCES)].relative_to(SAMPLE)),  # noqa: E731
                                         "listing_id": f"R{j}", "product": products[i % len(products)], "authenticity": kind, "source": "ref"}
            row.update(score=score, flagged=score >= 0.5, raw_score=score - 0.5, product=products[i % len(products)],
                       product_similarity=0.9, brand="nike", product_mismatch=(i % len(products)) != ((i + 1) % len(products)),
                       neighbors=[reference(j, "fake" if j % 2 else "genuine") for j in range(4)],
                       nearest_genuine=[reference(j, "genuine") for j in (0, 2)],
                       nearest_fake=[reference(j, "fake") for j in (1, 3)],
                       regions=[region(0.55, 0.40, 0.3, "fake", REFERENCES[1]), region(0.20, 0.70, 0.2, "genuine", REFERENCES[0])])
        rows.append(row)
    return rows


# What a gallery's index fit: held-back scores of both products, which 0.5 separates.
HELD_BACK = HeldBackScores(0.95, 0.01, {"shoes": HeldBackPool([i / 100 for i in range(50)], [0.5 + i / 100 for i in range(50)])},
                           {"nike air force": "shoes", "nike jordan 1": "shoes"})


def write_results(path: Path, rows: list[dict], held_back: HeldBackScores | None = HELD_BACK) -> Path:
    """A results file as `knockoff screen` writes one (`held_back` None: one from before listing calibration)."""
    metadata = {"model_version": "model-a", "index_version": "gallery-a"}
    if held_back:
        metadata["held_back_scores"] = held_back.to_json()
    writer = ResultWriter(path, metadata=metadata)
    writer.write(rows)
    writer.close()
    return path


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", data_root=SAMPLE, image_roots=(SAMPLE,),
                    model=tmp_path / "no-model.onnx", gallery=tmp_path / "no-gallery")


@pytest.fixture
def database(settings):
    initialize(settings.database)
    with closing(connect(settings.database)) as connection:
        yield connection


@pytest.fixture
def users(database) -> dict[str, int]:
    return {name: add_user(database, name, role, PASSWORD)
            for name, role in (("ana", "analyst"), ("bo", "analyst"), ("root", "admin"))}


@pytest.fixture
def run(database, tmp_path) -> int:
    run_id, _ = import_results(database, write_results(tmp_path / "results.parquet", result_rows(40)))
    return run_id


@pytest.fixture
def app(settings, database, users, run):
    return create_app(settings)


def login(app, name: str) -> tuple[TestClient, str]:
    """A client logged in as `name`, and its CSRF token."""
    client = TestClient(app)
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/queue").text
    return client, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def unsupported_app(settings, database, users, tiny_onnx, tmp_path, monkeypatch):
    """A scoring app whose queue holds one `unsupported` and one `no_match` photo."""
    from dataclasses import replace

    from knockoff.gallery.indexing import IndexConfig, index

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "gallery")
    rows = result_rows(6)
    rows[0].update(status="unsupported", score=None, flagged=False, path=str(PHOTOS[0]),
                   status_reason="nearest reference of nike air force 0.41; its product's held-back photos are >= 0.62")
    rows[1].update(status="no_match", score=None, flagged=False, status_reason="nearest catalogued reference 0.30")
    import_results(database, write_results(tmp_path / "open.parquet", rows))
    return create_app(replace(settings, model=tiny_onnx, gallery=tmp_path / "gallery"))


# A catalogue's signals (knockoff/listings/signals.py): priced listings with the ratios screening carries.
CATALOGUE = Catalogue((CatalogueProduct("nike air force", "nike", 100.0, "USD", ("brand/af1.jpg",), ("dealer",)),
                       CatalogueProduct("nike jordan 1", "nike", 200.0, "USD", ("brand/aj1.jpg",), ("dealer",))))


def ratios() -> SignalRatios:
    cheap, retail = PRICE_BANDS.index("under 35%"), PRICE_BANDS.index("95-110%")
    bands = {"price": np.array([cheap] * 40 + [retail] * 40), "reuse": np.array([REUSE_KINDS.index("none")] * 80)}
    return SignalRatios.neutral().refit(bands, np.array([True] * 40 + [False] * 40), "test decisions")


@pytest.fixture
def priced(settings, database, users, tmp_path):
    """Six one-photo listings at a fifth of retail (shop) and six at retail (dealer)."""
    rows = [row for row in result_rows(14) if not row["error"]][:12]
    for i, row in enumerate(rows):
        cheap = i < 6
        row.update(listing_id=f"P{i:02d}", seller_id="shop" if cheap else "dealer", currency="USD", status="scored",
                   price=(0.2 if cheap else 1.0) * (100.0 if row["product"] == "nike air force" else 200.0), claimed_product=None)
    path = tmp_path / "priced.parquet"
    writer = ResultWriter(path, metadata={"model_version": "model-a", "index_version": "gallery-a",
                                          "held_back_scores": HELD_BACK.to_json(),
                                          "catalogue": json.dumps(CATALOGUE.to_dict()), "listing_signals": ratios().to_json()})
    writer.write(rows)
    writer.close()
    run_id, _ = import_results(database, path)
    return create_app(settings), run_id
