"""Helpers shared by the tests: paths, synthetic image files, tiny model names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SHARED_DATA = REPO.parent / "shared" / "datasets"

# timm's tiny test architectures (random weights, 160 px): one per backbone family.
TINY_BACKBONES = ["test_efficientnet", "test_resnet", "test_byobnet"]


def write_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (96, 64), mode: str = "RGB", **save_args) -> Path:
    """A small real image file with a gradient, so resizing has something to resample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    ramp = np.linspace(0, 1, width)[None, :, None]
    pixels = (np.array(color)[None, None, :] * (0.5 + 0.5 * ramp)).astype(np.uint8)
    image = Image.fromarray(np.repeat(pixels, height, axis=0))
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save_args)
    return path


def write_crawl(manifest: Path, rows: int) -> Path:
    """A manifest (.csv or .parquet) of `rows` photos cycling over the sample's photos and
    its one corrupt upload, each row its own listing, twenty listings per seller."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    photos = sorted(str(p) for p in (SAMPLE / "sneakers").glob("*/images/*.jpg"))
    photos.append(str(SAMPLE / "uploads" / "truncated-upload.jpg"))
    table = pa.table({"listing_id": [f"L{i}" for i in range(rows)], "seller_id": [f"S{i // 20}" for i in range(rows)],
                      "path": [photos[i % len(photos)] for i in range(rows)]})
    if manifest.suffix == ".parquet":
        pq.write_table(table, manifest)
    else:
        manifest.write_text("listing_id,seller_id,path\n" + "".join(f"{i},{s},{p}\n" for i, s, p in zip(*table.to_pydict().values())))
    return manifest


def interrupt_scoring(monkeypatch, after_batches: int) -> list[int]:
    """Make the screening pipeline stop with KeyboardInterrupt (as Ctrl-C does) when it reaches
    its `after_batches`-th batch; returns the log of batch sizes scored."""
    from knockoff.screening.screen import Scorer

    real_rows, calls = Scorer.rows, []

    def rows(self, batch, embeddings):
        calls.append(len(batch.records))
        if len(calls) == after_batches:
            raise KeyboardInterrupt
        return real_rows(self, batch, embeddings)

    monkeypatch.setattr(Scorer, "rows", rows)
    return calls


# An x86 CPU with AVX2 and neither AVX-512 nor VNNI, emulated by QEMU's user mode
# (`apt-get install qemu-user`; .ci/run installs it): int8 must be right there too.
AVX2_ONLY_CPU = "EPYC-Rome"


def run_on_emulated_cpu(code: str, cpu: str = AVX2_ONLY_CPU, timeout: float = 600) -> str:
    """Run `python -c code` on an emulated CPU (the test's interpreter, this checkout); its stdout."""
    import shutil
    import subprocess
    import sys

    import pytest

    if shutil.which("qemu-x86_64") is None:
        pytest.skip("qemu-x86_64 missing (apt-get install qemu-user)")
    import platform

    if platform.machine().lower() not in {"x86_64", "amd64"}:
        pytest.skip("emulating x86 CPUs is for x86 hosts")
    finished = subprocess.run(["qemu-x86_64", "-cpu", cpu, sys.executable, "-c", code], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished.stdout


def zero_png(path: Path, width: int, height: int, bit_depth: int = 16, channels: int = 1) -> Path:
    """An all-zero PNG of any size (1 channel grey, 2 grey and alpha, 3 RGB, 4 RGBA), written row
    by row: a decompression bomb of a few hundred KB that never exists decoded in this process."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + width * channels * bit_depth // 8)  # filter byte + zero samples
    compressor, body = zlib.compressobj(9), []
    for _ in range(height):
        body.append(compressor.compress(row))
    body.append(compressor.flush())
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))
    return path


def review_store(path: Path, rows: int) -> Path:
    """A review service's store holding analyst 7 ("ana") and run 1 of `rows` rows; each test
    inserts the decided items it needs."""
    import sqlite3

    from knockoff_serve.store import initialize

    initialize(path)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO users (id, name, role, password_hash) VALUES (7, 'ana', 'analyst', 'x')")
        connection.execute("INSERT INTO runs (id, name, path, fingerprint, rows) VALUES (1, 'r', 'r', 'f', ?)", (rows,))
    return path
