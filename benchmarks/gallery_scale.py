"""How FAISS index types hold up as the reference gallery grows to millions of photos.

Builds a synthetic gallery shaped like real embeddings — L2-normalised, clustered (many
photos of each product and of each known fake, products in families of look-alikes), on an
anisotropic spectrum — and, for each
index_factory string, reports build time, memory per vector (the serialized index), queries
per second (batches of queries, k=10, all cores) and recall@10 against exact search, for a
few settings of its search parameter. Queries are fresh photos of the gallery's products.

    python benchmarks/gallery_scale.py                    # 1,000,000 x 256, ~25 minutes on 2 cores
    python benchmarks/gallery_scale.py --count 100000     # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

# (index_factory, search parameter name, values to try)
CANDIDATES = [
    ("Flat", None, [None]),
    ("IVF1024,Flat", "nprobe", [8, 16, 32, 64]),
    ("IVF1024,SQ8", "nprobe", [16, 32, 64]),
    ("HNSW32,Flat", "efSearch", [32, 64, 128, 256]),
]


def clustered_embeddings(count: int, dim: int, clusters: int, spread: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, their cluster), unit length, in two levels like a brand catalogue: families
    of related products (40 products each, their centres at cosine ~0.6 to one another), and
    photos around each product (`spread` 0.6: cosine ~0.85 to the product's centre)."""
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, dim + 1, dtype=np.float32) ** -0.5  # a few directions dominate, as in learned spaces
    unit_noise = spectrum / np.sqrt((spectrum ** 2).sum())

    def around(centres: np.ndarray, distance: float) -> np.ndarray:
        points = centres + rng.standard_normal((len(centres), dim), dtype=np.float32) * unit_noise * distance
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    families = around(np.zeros((max(1, clusters // 40), dim), dtype=np.float32), 1.0)
    centres = around(families[rng.integers(0, len(families), clusters)], 0.8)
    labels = rng.integers(0, clusters, count)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):  # in chunks: bounded temporaries
        vectors[start:start + 100_000] = around(centres[labels[start:start + 100_000]], spread)
    return vectors, labels


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))


def measure(factory: str, parameter: str | None, values: list, base: np.ndarray, queries: np.ndarray,
            truth: np.ndarray, k: int) -> list[dict]:
    index = faiss.index_factory(base.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    if not index.is_trained:
        index.train(base)
    index.add(base)
    build_s = time.perf_counter() - started
    bytes_per_vector = faiss.serialize_index(index).nbytes / index.ntotal
    rows = []
    for value in values:
        if parameter is not None:
            faiss.ParameterSpace().set_index_parameters(index, f"{parameter}={value}")
        index.search(queries[:100], k)  # warm-up
        started = time.perf_counter()
        _, found = index.search(queries, k)
        seconds = time.perf_counter() - started
        rows.append({
            "index_factory": factory,
            "search_parameters": f"{parameter}={value}" if parameter else "",
            "build_s": round(build_s, 1),
            "bytes_per_vector": round(bytes_per_vector, 1),
            "queries_per_s": round(len(queries) / seconds, 1),
            "recall_at_10": round(recall_at_k(found, truth), 4),
        })
        print(_row(rows[-1]), flush=True)
    del index
    return rows


def _row(row: dict) -> str:
    return (f"{row['index_factory']:<14} {row['search_parameters']:<13} {row['build_s']:>8.1f} "
            f"{row['bytes_per_vector']:>9.1f} {row['queries_per_s']:>10.1f} {row['recall_at_10']:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256, help="embedding size (the model's: 256)")
    parser.add_argument("--clusters", type=int, default=20_000, help="products x authenticity x look")
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark-gallery.json"))
    args = parser.parse_args()

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; "
          f"gallery {args.count:,} x {args.dim}, {args.clusters:,} clusters; {args.queries:,} queries, k={args.k}")
    vectors, _ = clustered_embeddings(args.count + args.queries, args.dim, args.clusters, 0.6, seed=0)
    base, queries = vectors[:args.count], vectors[args.count:]
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(base)
    _, truth = exact.search(queries, args.k)
    del exact
    print(f"{'index':<14} {'search':<13} {'build s':>8} {'B/vector':>9} {'queries/s':>10} {'recall@10':>9}")
    rows = []
    for factory, parameter, values in CANDIDATES:
        rows.extend(measure(factory, parameter, values, base, queries, truth, args.k))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"count": args.count, "dim": args.dim, "clusters": args.clusters,
                                    "queries": args.queries, "threads": faiss.omp_get_max_threads(), "rows": rows}, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
