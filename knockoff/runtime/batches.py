"""Decode records into batches of model inputs, in parallel, keeping failures as rows.

Pillow releases the GIL while decoding and resizing, so a thread pool decodes in parallel
without copying pixels between processes. A bounded window of batches is in flight, so
memory does not grow with the number of records.

Photos behind a URL (or in an object store) are fetched by a pool of their own, started up to
FETCH_AHEAD records before they are decoded: a decode thread never waits on the network, so a
server that trickles bytes until the download deadline holds only its own row, and several
slow servers in a crawl wait side by side rather than one after another.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import numpy as np

from knockoff.data.records import ImageRecord
from knockoff.images.decode import ImageLoadError, decode_rgb, is_object_store, is_url, load_rgb, read_bytes

FETCH_WORKERS = 16  # downloads wait on the network, not on the CPU
FETCH_AHEAD = 32  # records read ahead to start their downloads (at most this many x MAX_DOWNLOAD_BYTES held)


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


def _is_remote(record: ImageRecord) -> bool:
    return bool(record.path) and not record.error and (is_url(record.path) or is_object_store(record.path))


def _fetch(path: str) -> bytes | str:
    try:
        return read_bytes(path)
    except ImageLoadError as error:
        return str(error)


def _decode_fetched(data: bytes | str, size: int, name: str) -> np.ndarray | str:
    if isinstance(data, str):
        return data
    try:
        return decode_rgb(data, size, name=name)
    except ImageLoadError as error:
        return str(error)


def _then(fetched: Future, pool: ThreadPoolExecutor, size: int, name: str) -> Future:
    """A future of the decoded photo, decoded on `pool` once its bytes have arrived."""
    decoded: Future = Future()

    def relay(done: Future) -> None:
        if done.exception() is not None:
            decoded.set_exception(done.exception())
        else:
            decoded.set_result(done.result())

    def start(done: Future) -> None:
        try:
            pool.submit(_decode_fetched, done.result(), size, name).add_done_callback(relay)
        except RuntimeError as error:  # the pool is shutting down: the consumer has gone
            decoded.set_exception(error)

    fetched.add_done_callback(start)
    return decoded


def _decode_batch(pairs: list[tuple[ImageRecord, Future | None]], size: int, pool: ThreadPoolExecutor) -> DecodedBatch:
    futures = [pool.submit(_decode, record, size) if fetched is None else _then(fetched, pool, size, record.path)
               for record, fetched in pairs]
    results = [future.result() for future in futures]
    images = [result for result in results if isinstance(result, np.ndarray)]
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    errors = [result if isinstance(result, str) else None for result in results]
    return DecodedBatch([record for record, _ in pairs], stacked, errors)


def _fetched_ahead(records: Iterator[ImageRecord], fetcher: ThreadPoolExecutor, ahead: int) -> Iterator[tuple[ImageRecord, Future | None]]:
    """Records with their downloads already under way, `ahead` records before they are needed."""
    window: deque[tuple[ImageRecord, Future | None]] = deque()
    for record in records:
        window.append((record, fetcher.submit(_fetch, record.path) if _is_remote(record) else None))
        if len(window) > ahead:
            yield window.popleft()
    yield from window


def decode_batches(
    records: Iterable[ImageRecord], size: int, batch_size: int = 64, workers: int = 2, prefetch: int = 2
) -> Iterator[DecodedBatch]:
    """Batches of decoded images in input order; `prefetch` batches decode ahead of the consumer."""
    fetcher = ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="fetch")
    pair_iter = _fetched_ahead(iter(records), fetcher, FETCH_AHEAD)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch") as batcher:
            pending: deque[Future[DecodedBatch]] = deque()

            def submit_next() -> bool:
                chunk = list(islice(pair_iter, batch_size))
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
    finally:
        fetcher.shutdown(wait=False, cancel_futures=True)
