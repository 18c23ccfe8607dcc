"""The Ray Data engine on a real local Ray cluster: the same rows and scores as the local engine."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from knockoff.screening.screen import ScreenOptions, screen
from tests.helpers import interrupt_scoring, write_crawl

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_engine_gives_the_local_engines_rows(local_cluster, tiny_onnx, tiny_gallery, tmp_path):
    from knockoff.screening.ray_engine import screen_ray

    crawl = write_crawl(tmp_path / "crawl.parquet", 300)
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
    # the listing fields travel through Ray, and the sellers made of its output are the local ones
    from knockoff.listings import write_sellers

    assert ours.column("seller_id").to_pylist() == theirs.column("seller_id").to_pylist()
    ray_sellers = write_sellers(tmp_path / "ray.parquet", tmp_path / "ray-sellers.parquet").sort_by("seller_id")
    local_sellers = write_sellers(tmp_path / "local.parquet", tmp_path / "local-sellers.parquet").sort_by("seller_id")
    assert ray_sellers.num_rows == 15
    for column in ("seller_id", "listings", "judged_listings", "flagged_listings", "top_listing"):
        assert ray_sellers.column(column).to_pylist() == local_sellers.column(column).to_pylist(), column
    np.testing.assert_allclose(ray_sellers.column("risk").to_numpy(), local_sellers.column("risk").to_numpy(), atol=1e-5)


def test_ray_engine_resumes_an_interrupted_run(local_cluster, tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    """An interrupted local run, finished by --engine ray --resume: every row once, in order."""
    from knockoff.screening.ray_engine import screen_ray

    crawl = write_crawl(tmp_path / "crawl.parquet", 120)
    options = ScreenOptions(batch_size=8, rows_per_part=16)
    screen([str(crawl)], tmp_path / "full.parquet", tiny_onnx, tiny_gallery, options)
    interrupt_scoring(monkeypatch, after_batches=5)
    with pytest.raises(KeyboardInterrupt):
        screen([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery, options)
    monkeypatch.undo()
    summary = screen_ray([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery,
                         ScreenOptions(batch_size=8, rows_per_part=16, resume=True), actors=1)
    assert summary.resumed_from == 32 and summary.screened == 120
    ours, theirs = pq.read_table(tmp_path / "r.parquet"), pq.read_table(tmp_path / "full.parquet")
    assert ours.column("listing_id").to_pylist() == theirs.column("listing_id").to_pylist()
    np.testing.assert_allclose(np.array(ours.column("score").to_pylist(), dtype=float),
                               np.array(theirs.column("score").to_pylist(), dtype=float), atol=1e-5)
