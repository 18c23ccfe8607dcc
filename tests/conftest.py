"""Shared fixtures: real sample photos, an isolated data root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SAMPLE


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture
def sample_photos() -> list[Path]:
    return sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))


@pytest.fixture
def data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty data root, set as KNOCKOFF_DATA."""
    root = tmp_path / "data-root"
    root.mkdir()
    monkeypatch.setenv("KNOCKOFF_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A random-weight tiny embedder exported to ONNX (160 px, 16-d)."""
    pytest.importorskip("torch")
    from knockoff.model.checkpoint import model_version
    from knockoff.model.embedder import EmbedderConfig, create_embedder
    from knockoff.model.export import export_onnx, model_info

    model = create_embedder(EmbedderConfig("test_efficientnet", embedding_dim=16), pretrained="none").eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    export_onnx(model, model_info(model, model_version(model), "finetuned"), path)
    return path


@pytest.fixture(scope="session")
def tiny_gallery(tiny_onnx, tmp_path_factory) -> Path:
    """A calibrated gallery of the bundled sample's train photos for the tiny model (read-only)."""
    from knockoff.indexing import IndexConfig, index

    directory = tmp_path_factory.mktemp("tiny-gallery") / "gallery"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KNOCKOFF_DATA", str(SAMPLE))
        index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, directory)
    return directory
