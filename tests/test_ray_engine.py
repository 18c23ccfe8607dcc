"""The Ray Data engine on a real local Ray cluster: the same rows and scores as the local engine."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from knockoff.screen import ScreenOptions, screen
from tests.helpers import SAMPLE

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _crawl(tmp_path, rows: int):
    photos = sorted(str(p) for p in (SAMPLE / "sneakers").glob("*/images/*.jpg"))
    photos.append(str(SAMPLE / "uploads" / "truncated-upload.jpg"))
    manifest = tmp_path / "crawl.parquet"
    import pyarrow as pa

    pq.write_table(pa.table({"listing_id": [f"L{i}" for i in range(rows)],
                             "path": [photos[i % len(photos)] for i in range(rows)]}), manifest)
    return manifest


def test_ray_engine_gives_the_local_engines_rows(local_cluster, tiny_onnx, tiny_gallery, tmp_path):
    from knockoff.ray_engine import screen_ray

    crawl = _crawl(tmp_path, 300)
    options = ScreenOptions(batch_size=16)
    local = screen([str(crawl)], tmp_path / "local.parquet", tiny_onnx, tiny_gallery, options)
    distributed = screen_ray([str(crawl)], tmp_path / "ray.parquet", tiny_onnx, tiny_gallery, options,
                             actors=2, window_rows=128)
    assert (distributed.screened, distributed.flagged, distributed.failed) == (local.screened, local.flagged, local.failed)
    corrupt = sum(path.endswith("truncated-upload.jpg") for path in pq.read_table(crawl).column("path").to_pylist())
    assert distributed.failed == corrupt > 0
    ours, theirs = pq.read_table(tmp_path / "ray.parquet"), pq.read_table(tmp_path / "local.parquet")
    for column in ("listing_id", "path", "flagged", "product", "error", "model_version", "index_version"):
        assert ours.column(column).to_pylist() == theirs.column(column).to_pylist(), column
    score, expected = (np.array(t.column("score").to_pylist(), dtype=float) for t in (ours, theirs))
    np.testing.assert_allclose(score, expected, atol=1e-5)
    nearest = [[n["path"] for n in row or []] for row in ours.column("nearest_fake").to_pylist()]
    assert nearest == [[n["path"] for n in row or []] for row in theirs.column("nearest_fake").to_pylist()]


def test_ray_engine_resumes_an_interrupted_run(local_cluster, tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    """An interrupted local run, finished by --engine ray --resume: every row once, in order."""
    from knockoff.ray_engine import screen_ray
    from knockoff.screen import Scorer

    crawl = _crawl(tmp_path, 120)
    options = ScreenOptions(batch_size=8, rows_per_part=16)
    screen([str(crawl)], tmp_path / "full.parquet", tiny_onnx, tiny_gallery, options)
    real_rows, calls = Scorer.rows, []

    def interrupted(self, batch, embeddings):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_rows(self, batch, embeddings)

    monkeypatch.setattr(Scorer, "rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        screen([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery, options)
    monkeypatch.setattr(Scorer, "rows", real_rows)
    summary = screen_ray([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery,
                         ScreenOptions(batch_size=8, rows_per_part=16, resume=True), actors=1)
    assert summary.resumed_from == 32 and summary.screened == 120
    ours, theirs = pq.read_table(tmp_path / "r.parquet"), pq.read_table(tmp_path / "full.parquet")
    assert ours.column("listing_id").to_pylist() == theirs.column("listing_id").to_pylist()
    np.testing.assert_allclose(np.array(ours.column("score").to_pylist(), dtype=float),
                               np.array(theirs.column("score").to_pylist(), dtype=float), atol=1e-5)
