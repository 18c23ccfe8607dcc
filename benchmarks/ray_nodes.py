"""Ray Data screening on several nodes: images/s in all and per node, beside the local engine.

Starts Ray clusters on this machine with `ray.cluster_utils.Cluster` (a head and workers:
separate raylets, each with its own CPU count) and screens the same crawl of real sneaker
JPEGs with `--engine ray` through each, counting the rows every node screened
(ScreenSummary.rows_per_node); then the local engine, in the same run. One machine's cores
are shared by its nodes, so several nodes here measure Ray's overhead and the spread of the
work, not added capacity: the per-node figure of a real cluster is the one-node figure on
that node's cores. From it, the nodes that 5-8 billion photos a day need (inferred, and said so).

    KNOCKOFF_DATA=../shared/datasets python benchmarks/ray_nodes.py [--count 600]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.data import read_sources
from knockoff.runtime.cpu import cpu_description
from knockoff.screening.ray_engine import screen_ray
from knockoff.screening.screen import ScreenOptions, screen

DAY_S = 86_400
DAILY = (5e9, 8e9)  # photos a day: the scale Amazon reports for its brand-protection scanning


def crawl(count: int, out: Path) -> Path:
    paths = [os.path.abspath(r.path) for r in read_sources(["sneakers/train", "sneakers/valid"])][:count]
    pq.write_table(pa.table({"listing_id": [f"L{i}" for i in range(len(paths))], "path": paths}), out)
    return out


def on_cluster(layout: list[int], manifest: Path, out: Path, model: Path, gallery: Path) -> dict:
    """Screen on a cluster of len(layout) nodes with these CPU counts; images/s and rows per node."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": layout[0], "include_dashboard": False})
    for cpus in layout[1:]:
        cluster.add_node(num_cpus=cpus)
    cluster.wait_for_nodes()
    try:
        options = ScreenOptions(threads=min(layout), regions=False)
        started = time.perf_counter()
        summary = screen_ray([str(manifest)], out, model, gallery, options, address=cluster.address)
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {"nodes": len(layout), "cpus_per_node": layout, "images": summary.screened, "seconds": round(seconds, 1),
            "images_per_s": round(summary.screened / seconds, 1),
            "images_per_s_per_node": round(summary.screened / seconds / len(layout), 1),
            "rows_per_node": sorted(summary.rows_per_node.values(), reverse=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--model", type=Path, default=Path("models/knockoff.onnx"))
    parser.add_argument("--index", type=Path, default=Path("models/gallery"))
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-ray-nodes.json"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="knockoff-ray-"))
    manifest = crawl(args.count, work / "crawl.parquet")
    report = {"cpu": cpu_description(), "cores": cores, "photos": args.count, "runs": []}
    print(f"CPU: {report['cpu']}, {cores} cores; {args.count} photos", flush=True)
    started = time.perf_counter()
    local = screen([str(manifest)], work / "local.parquet", args.model, args.index, ScreenOptions(regions=False))
    report["local"] = {"images": local.screened, "images_per_s": round(local.screened / (time.perf_counter() - started), 1)}
    print(f"local engine: {report['local']['images_per_s']} images/s", flush=True)
    for layout in ([cores], [max(1, cores // 2)] * 2, [max(1, cores // 2)] * 3):
        run = on_cluster(layout, manifest, work / f"ray-{len(layout)}.parquet", args.model, args.index)
        report["runs"].append(run)
        print(f"ray, {run['nodes']} nodes of {layout} CPUs: {run['images_per_s']} images/s in all, "
              f"{run['images_per_s_per_node']} per node; rows per node {run['rows_per_node']}", flush=True)
    one_node = report["runs"][0]["images_per_s"]
    report["nodes_needed_inferred"] = {
        f"{int(daily / 1e9)}B_per_day": {
            f"{cores}-core CPU node ({one_node} images/s, measured here)": round(daily / DAY_S / one_node),
        } for daily in DAILY}
    for daily in DAILY:
        print(f"{daily / 1e9:.0f} billion photos a day = {daily / DAY_S:,.0f} images/s: "
              f"{daily / DAY_S / one_node:,.0f} nodes like one of these ({cores} cores, {one_node} images/s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
