"""Decode records into batches of model inputs, in parallel, keeping failures as rows.

Pillow releases the GIL while decoding and resizing, so a thread pool decodes in parallel
without copying pixels between processes. A bounded window of batches is in flight, so
memory does not grow with the number of records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np

from knockoff.imaging import ImageLoadError, load_rgb
from knockoff.records import ImageRecord


@dataclass
class DecodedBatch:
    records: list[ImageRecord]
    images: np.ndarray  # (number of decoded records, S, S, 3) uint8
    errors: list[str | None]  # one per record; None where decoding succeeded

    @property
    def ok(self) -> np.ndarray:
        return np.array([error is None for error in self.errors], dtype=bool)


def _decode(record: ImageRecord, size: int) -> np.ndarray | str:
    if record.error:
        return record.error
    if not record.path:
        return "no path or url given"
    try:
        return load_rgb(record.path, size)
    except ImageLoadError as error:
        return str(error)


def _decode_batch(records: list[ImageRecord], size: int, pool: ThreadPoolExecutor) -> DecodedBatch:
    results = list(pool.map(_decode, records, [size] * len(records)))
    images = [result for result in results if isinstance(result, np.ndarray)]
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    errors = [result if isinstance(result, str) else None for result in results]
    return DecodedBatch(records, stacked, errors)


def decode_batches(
    records: Iterable[ImageRecord], size: int, batch_size: int = 64, workers: int = 2, prefetch: int = 2
) -> Iterator[DecodedBatch]:
    """Batches of decoded images in input order; `prefetch` batches decode ahead of the consumer."""
    record_iter = iter(records)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch") as batcher:
        pending: deque[Future[DecodedBatch]] = deque()

        def submit_next() -> bool:
            chunk = list(islice(record_iter, batch_size))
            if chunk:
                pending.append(batcher.submit(_decode_batch, chunk, size, pool))
            return bool(chunk)

        for _ in range(prefetch + 1):
            if not submit_next():
                break
        while pending:
            batch = pending.popleft().result()
            submit_next()
            yield batch
