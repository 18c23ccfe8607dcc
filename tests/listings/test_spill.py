import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.listings.spill import key_hashes, partitions


def test_key_hashes_are_stable_across_batches_and_slices_and_nulls_hash_like_empty():
    keys = pa.array(["L1", "L2", None, "", "L1", "a much longer listing identifier"])
    hashes = key_hashes(keys)
    assert hashes[0] == hashes[4] and hashes[2] == hashes[3]
    assert key_hashes(keys.slice(4, 1))[0] == hashes[0]
    assert key_hashes(pa.chunked_array([keys[:2], keys[2:]]))[1] == hashes[1]
    many = key_hashes(pa.array([f"listing-{i}" for i in range(100_000)]))
    assert len(np.unique(many)) == 100_000
    assert np.bincount((many % np.uint64(8)).astype(int)).min() > 11_000  # spread evenly


def test_every_group_lands_whole_in_one_partition_and_nothing_is_lost(tmp_path):
    rng = np.random.default_rng(0)
    listing = [f"L{i}" for i in rng.integers(0, 3_000, 20_000)]
    listing = [None if i % 97 == 0 else key for i, key in enumerate(listing)]
    table = pa.table({"listing_id": listing, "path": [f"p{i}.jpg" for i in range(20_000)],
                      "score": rng.random(20_000)})
    source = tmp_path / "results.parquet"
    pq.write_table(table, source, row_group_size=4_096)
    parts = list(partitions(source, "listing_id", ["path", "score"], rows_per_partition=2_500, key_fallback="path"))
    assert len(parts) == 8
    seen: dict[str, int] = {}
    for number, part in enumerate(parts):
        for key in set(part.column("listing_id").to_pylist()):
            assert key not in seen, f"{key} split between partitions {seen[key]} and {number}"
            seen[key] = number
    merged = pa.concat_tables(parts).sort_by("path")
    assert merged.column("path").to_pylist() == table.sort_by("path").column("path").to_pylist()
    # a photo without a listing id is a listing of its own, named by its path
    assert merged.filter(pa.compute.equal(merged.column("path"), "p0.jpg")).column("listing_id").to_pylist() == ["p0.jpg"]
