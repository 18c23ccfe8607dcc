"""The Ray Data engine on a cluster of three nodes (ray.cluster_utils.Cluster: a head and two
workers, separate raylets with their own resources, on this one machine): the rows are the
local engine's, and the work spreads over every node."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from knockoff.screening.screen import ScreenOptions, screen
from tests.helpers import write_crawl

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

NODES = 3
CPUS_PER_NODE = 2  # logical: one screening actor (2 CPUs) fits a node, never two


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    nodes = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": CPUS_PER_NODE, "include_dashboard": False})
    for _ in range(NODES - 1):
        nodes.add_node(num_cpus=CPUS_PER_NODE)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def test_three_nodes_give_the_local_engines_rows_with_an_actor_on_every_node(cluster, tiny_onnx, tiny_gallery, tmp_path):
    from knockoff.screening.ray_engine import screen_ray

    crawl = write_crawl(tmp_path / "crawl.parquet", 900)
    options = ScreenOptions(batch_size=16, threads=2)
    local = screen([str(crawl)], tmp_path / "local.parquet", tiny_onnx, tiny_gallery, options)
    distributed = screen_ray([str(crawl)], tmp_path / "ray.parquet", tiny_onnx, tiny_gallery, options,
                             address=cluster.address, window_rows=900)
    alive = [node for node in ray.nodes() if node["Alive"]]
    assert len(alive) == NODES and ray.cluster_resources()["CPU"] == NODES * CPUS_PER_NODE
    assert (distributed.screened, distributed.flagged, distributed.failed) == (local.screened, local.flagged, local.failed)
    ours, theirs = pq.read_table(tmp_path / "ray.parquet"), pq.read_table(tmp_path / "local.parquet")
    for column in ("listing_id", "path", "flagged", "status", "product", "error", "model_version", "index_version"):
        assert ours.column(column).to_pylist() == theirs.column(column).to_pylist(), column
    np.testing.assert_allclose(np.array(ours.column("score").to_pylist(), dtype=float),
                               np.array(theirs.column("score").to_pylist(), dtype=float), atol=1e-5)
    # 900 rows in calls of 64 for 3 actors of 2 CPUs, on 3 nodes of 2 CPUs: every node screens some
    assert set(distributed.rows_per_node) == {node["NodeID"] for node in alive}
    assert sum(distributed.rows_per_node.values()) == distributed.screened and min(distributed.rows_per_node.values()) > 0
    assert f"{NODES} nodes screened" in distributed.line()
