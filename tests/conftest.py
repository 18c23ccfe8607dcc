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
    """A random-weight tiny embedder exported to ONNX (160 px, 16-d), with its patch model beside it."""
    pytest.importorskip("torch")
    from knockoff.model.checkpoint import model_version
    from knockoff.model.embedder import EmbedderConfig, create_embedder
    from knockoff.model.export import export_onnx, export_patches, model_info
    from knockoff.runtime.patches import patches_path

    import torch

    torch.manual_seed(0)  # the same random weights every run: a test on its verdicts passes or fails for good
    model = create_embedder(EmbedderConfig("test_efficientnet", embedding_dim=16), pretrained="none").eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    info = model_info(model, model_version(model), "finetuned")
    export_onnx(model, info, path)
    export_patches(model, info, patches_path(path))  # local evidence: tiny.patches.onnx beside it
    return path


@pytest.fixture(scope="session")
def tiny_gallery(tiny_onnx, tmp_path_factory) -> Path:
    """A calibrated gallery of the bundled sample's train photos for the tiny model (read-only)."""
    from knockoff.gallery.indexing import IndexConfig, index

    directory = tmp_path_factory.mktemp("tiny-gallery") / "gallery"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KNOCKOFF_DATA", str(SAMPLE))
        index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, directory)
    return directory


@pytest.fixture
def trickling_server(monkeypatch):
    """A real HTTP server on 127.0.0.1 whose /slow sends one byte every 0.2 s, for ever (bounded
    here to 60 s), whose /photo serves a real photo at once, and whose /redirect?to=URL
    redirects. `.peak` is the most /slow downloads it ever served at the same time, `.requests`
    every request. Downloads from this machine are allowed (KNOCKOFF_ALLOW_PRIVATE_URLS) for it."""
    monkeypatch.setenv("KNOCKOFF_ALLOW_PRIVATE_URLS", "1")
    import http.server
    import threading
    import time as clock
    import types

    lock = threading.Lock()
    state = types.SimpleNamespace(url="", active=0, peak=0, requests=0)
    photo = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[0].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            with lock:
                state.requests += 1
            if self.path.startswith("/redirect?to="):
                self.send_response(302)
                self.send_header("Location", self.path.removeprefix("/redirect?to="))
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            if self.path == "/photo":
                self.wfile.write(photo)
                return
            started = clock.monotonic()
            with lock:
                state.active += 1
                state.peak = max(state.peak, state.active)
            try:
                while clock.monotonic() - started < 60:
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    clock.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with lock:
                    state.active -= 1

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
