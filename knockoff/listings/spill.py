"""Group a results file of any size by a key without holding it in memory.

Rows stream through once and are hash-partitioned by the key into Arrow IPC spill files (a
writer holds next to nothing, unlike a Parquet writer's buffers and codecs), so
every group lands whole in one partition; each partition is then small enough to group in
memory. The number of partitions grows with the input (`rows_per_partition`), so memory is
bounded by one partition, not by the crawl.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from knockoff.scratch import scratch_folder

ROWS_PER_PARTITION = 50_000  # small enough that one partition is a fixed, small share of memory
READ_BATCH_ROWS = 65_536
MAX_PARTITIONS = 512  # open spill files at once; beyond 25M rows partitions grow instead


def partitions(source: Path, key: str, columns: list[str], rows_per_partition: int = ROWS_PER_PARTITION,
               key_fallback: str | None = None) -> Iterator[pa.Table]:
    """Tables of `columns` (plus `key`), each holding whole groups of `key`. A null key takes
    `key_fallback`'s value (a photo without a listing id is a listing of its own)."""
    parquet = pq.ParquetFile(source)
    wanted = [c for c in dict.fromkeys([key, *columns, *([key_fallback] if key_fallback else [])])
              if c in parquet.schema_arrow.names]
    count = min(MAX_PARTITIONS, max(1, math.ceil(parquet.metadata.num_rows / rows_per_partition)))
    if count == 1:
        yield _with_key(parquet.read(columns=wanted), key, key_fallback)
        return
    with scratch_folder("spill") as scratch:
        writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        try:
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=wanted):
                table = _with_key(pa.Table.from_batches([batch]), key, key_fallback)
                buckets = _bucket(table.column(key), count)
                order = np.argsort(buckets, kind="stable")
                table, buckets = table.take(pa.array(order)), buckets[order]
                edges = np.flatnonzero(np.diff(buckets)) + 1
                for start, stop in zip(np.r_[0, edges], np.r_[edges, len(buckets)]):
                    bucket = int(buckets[start])
                    if bucket not in writers:
                        writers[bucket] = pa.ipc.new_stream(Path(scratch) / f"part-{bucket}.arrows", table.schema)
                    writers[bucket].write_table(table.slice(start, stop - start))
        finally:
            for writer in writers.values():
                writer.close()
        for bucket in sorted(writers):
            with pa.ipc.open_stream(Path(scratch) / f"part-{bucket}.arrows") as reader:
                yield reader.read_all()


def _with_key(table: pa.Table, key: str, fallback: str | None) -> pa.Table:
    if key not in table.column_names:
        values = table.column(fallback) if fallback else pa.nulls(table.num_rows, pa.string())
        return table.append_column(key, values)
    if fallback and table.column(key).null_count:
        filled = pc.coalesce(table.column(key), table.column(fallback))
        return table.set_column(table.column_names.index(key), key, filled)
    return table


def _bucket(keys: pa.ChunkedArray, count: int) -> np.ndarray:
    """A stable partition number per key (the same key, the same partition, in every batch)."""
    return (key_hashes(keys) % np.uint64(count)).astype(np.int64)


def key_hashes(keys: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of each string, computed over the Arrow buffers with numpy (stable across
    runs and batches, unlike Python's salted hash()); null hashes like ''."""
    array = pc.fill_null(keys, "").cast(pa.large_string())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset: array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    hashes = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    if lengths.sum():
        starts = offsets[:-1]
        used = data[offsets[0]: offsets[-1]].astype(np.uint64)
        position = np.arange(len(used)) - np.repeat(starts - offsets[0], lengths)
        weights = _powers(int(lengths.max()))[position]
        nonempty = lengths > 0
        with np.errstate(over="ignore"):
            sums = np.zeros(len(lengths), dtype=np.uint64)
            sums[nonempty] = np.add.reduceat(used * weights, (starts - offsets[0])[nonempty])
            hashes = hashes ^ sums
    with np.errstate(over="ignore"):  # a 64-bit finaliser (splitmix64) spreads the bits
        hashes ^= hashes >> np.uint64(30)
        hashes *= np.uint64(0xBF58476D1CE4E5B9)
        hashes ^= hashes >> np.uint64(27)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(31)
    return hashes


def _powers(length: int) -> np.ndarray:
    powers = np.ones(length, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(1, length):
            powers[i] = powers[i - 1] * np.uint64(1099511628211)
    return powers
