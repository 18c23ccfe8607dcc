"""`knockoff screen`: score listing photos for counterfeits. Never imports torch.

A streaming pipeline whose stages overlap through bounded queues, so the cores stay busy on
the model and memory does not grow with the crawl:

    records -> [decode threads: reduce-on-decode JPEG, resize] -> batches (bounded prefetch)
            -> [model streams: onnxruntime, releases the GIL; on CPU one per core, each
                running 2 photos at a time on one thread] -> embeddings, in order
            -> [post thread: FAISS search, scoring, evidence, Parquet part] (bounded)

An image that cannot be read becomes a row with `error` set; the run goes on. Rows are
committed in parts, so an interrupted run resumes where it stopped (`--resume`).
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event

import faiss
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from knockoff.data import read_source
from knockoff.data.records import LISTING_FIELDS, ImageRecord
from knockoff.gallery.matching import MatchBatch, match
from knockoff.gallery.store import Gallery
from knockoff.runtime.batches import DecodedBatch, decode_batches
from knockoff.runtime.embedding import OnnxEmbedder
from knockoff.screening.duplicates import DuplicateOptions
from knockoff.screening.local import LocalEvidence
from knockoff.screening.parts import PART_SCHEMA, PartWriter, parts_dir
from knockoff.screening.results import RESULT_SCHEMA

DEFAULT_MODEL = Path("models/knockoff.onnx")
DEFAULT_GALLERY = Path("models/gallery")
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository this Knockoff runs from (an editable install)


MODELS_SETTING = "KNOCKOFF_MODELS"  # a folder holding knockoff.onnx and gallery/, as models/ does


def shipped(path: Path, default: Path) -> Path:
    """`path` as given, or for the default (models/...): the first of `KNOCKOFF_MODELS`'s, the
    working folder's, and the checkout's own (an installed Knockoff run from another folder
    screens with its shipped model and gallery). None there: FileNotFoundError naming every
    place it looked."""
    if Path(path) != default:
        return Path(path)
    places = model_places(default)
    found = next((place for place in places if place.exists()), None)
    if found is None:
        raise FileNotFoundError(f"{default.name} not found; looked in {', '.join(str(p) for p in places)} "
                                f"(set {MODELS_SETTING} to a folder holding knockoff.onnx and gallery/, pass --model and "
                                f"--index, or run `dvc repro`)")
    return found


def model_places(default: Path) -> list[Path]:
    """Where a default model file is looked for, in order."""
    inside = Path(default).relative_to("models") if Path(default).parts[:1] == ("models",) else Path(default)
    setting = os.environ.get(MODELS_SETTING)
    return [*([Path(setting) / inside] if setting else []), Path.cwd() / default, CHECKOUT / default]


@dataclass(frozen=True)
class ScreenOptions:
    # Photos decoded, searched, scored and written together: the search, scoring and rows cost
    # less per photo in large batches (the post thread's CPU: 0.17 ms per photo at 64, 0.29 at
    # 16). The model takes them in runs of `model_batch`, shared among the streams. End to end
    # on 2 cores, runs of 2 (benchmarks/screening.py --tune: interleaved, medians of 3): batch
    # 64, 188.1 images/s; 32, 186.4; 128, 182.9. Batches of 16 run whole, as before: 174.1.
    batch_size: int = 64
    decode_workers: int | None = None  # None: one per core
    threads: int | None = None  # onnxruntime intra-op threads per model stream; None: cores / streams
    device: str = "cpu"
    # The most photos per onnxruntime run. None: 2 on CPU, where a run's activations then stay
    # in cache while decode threads share it (EfficientNet-lite0's widest layers hold about
    # 5 MB per photo); the whole batch on a GPU. Batch 64 in runs of 2, 4, 8, 16: 188.1, 184.0,
    # 180.1, 178.7 images/s end to end, 10.50, 10.74, 10.98, 11.06 ms of CPU per photo (--tune,
    # as above). The model alone is fastest at 2-4 as well (its first pass: 213.0 and 213.8
    # images/s against 205.5 at 1, 196.0 at 8 and 198.2 at 16).
    model_batch: int | None = None
    prefetch: int = 2  # decoded batches waiting for the model
    post_queue: int = 2  # embedded batches waiting for search, scoring and writing
    rows_per_part: int = 4096  # rows per committed part: the most a crash can cost
    resume: bool = False
    # Reused photos across the run, searched when it finishes (duplicate_group); None: not
    # searched. Off by default: on photos dense in look-alikes it costs several times the
    # screening itself (benchmarks/duplicates.py).
    duplicates: DuplicateOptions | None = None
    # Each photo checked for a copy of a gallery reference (reference_copy, the copy verdict:
    # knockoff/gallery/copies.py) against the thumbnails the gallery keeps. On by default.
    copy_check: bool = True
    # Local evidence (`regions`: knockoff/gallery/regions.py) for the photos that reach a
    # verdict, where the model has its patch model and the gallery its patch banks. Judged
    # photos only: the patch model runs the backbone's first two thirds again, on those alone.
    regions: bool = True
    # Batches in the model at once, each on its own thread. None: on CPU one per core with one
    # onnxruntime thread each (unless `threads` is given: then one stream), one on a GPU.
    # Single-threaded runs never wait on each other when a decode thread takes a core, where
    # one run split over both cores stalls at every operator (benchmarks/screening.py:
    # 155-164 against 150-156 images/s end to end on 2 cores).
    model_streams: int | None = None
    # OpenMP threads of the post thread's FAISS searches. None: one on CPU, where the model
    # streams already fill every core and FAISS's idle OpenMP workers spin (libgomp's default
    # wait policy) on the cores the model needs: 157-162 against 172-175 images/s end to end
    # on 2 cores (benchmarks/screening.py, post thread); FAISS's default beside a GPU.
    search_threads: int | None = None

    @property
    def workers(self) -> int:
        return self.decode_workers or os.cpu_count() or 1

    @property
    def streams(self) -> int:
        if self.model_streams:
            return self.model_streams
        return 1 if self.device != "cpu" or self.threads else os.cpu_count() or 1

    @property
    def run_batch(self) -> int | None:
        """Photos per onnxruntime run (None: the whole batch)."""
        return self.model_batch or (2 if self.device == "cpu" else None)

    @property
    def post_search_threads(self) -> int | None:
        """OpenMP threads for the post thread's searches (None: FAISS's default)."""
        return self.search_threads or (1 if self.device == "cpu" else None)

    @property
    def session_threads(self) -> int | None:
        """onnxruntime's intra-op threads for this run's session (None: its default)."""
        if self.threads or self.device != "cpu":
            return self.threads
        return max(1, (os.cpu_count() or 1) // self.streams)


@dataclass(frozen=True)
class ScreenSummary:
    screened: int
    flagged: int
    failed: int
    out: Path
    model_version: str
    index_version: str
    resumed_from: int = 0
    rows_per_node: dict[str, int] = field(default_factory=dict)  # --engine ray: rows each node screened

    def line(self) -> str:
        resumed = f" (resumed after {self.resumed_from})" if self.resumed_from else ""
        nodes = (f"; {len(self.rows_per_node)} nodes screened "
                 f"{', '.join(str(n) for n in sorted(self.rows_per_node.values(), reverse=True))} rows"
                 if self.rows_per_node else "")
        return (
            f"screened {self.screened} images{resumed}: {self.flagged} flagged, {self.failed} failed "
            f"-> {self.out} (model {self.model_version}, gallery {self.index_version}){nodes}"
        )


def iter_inputs(inputs: Iterable[str]) -> Iterator[ImageRecord]:
    """Every record of the inputs; a manifest line that cannot be read is an error row, so the
    run (and its --resume) gets past it."""
    for spec in inputs:
        yield from read_source(spec, bad_rows="record")


class Scorer:
    """A model and the gallery built for it: decoded batches -> result rows."""

    def __init__(self, model_path: Path, gallery_path: Path, threads: int | None = None, device: str = "cpu",
                 copy_check: bool = True, regions: bool = True) -> None:
        self.copy_check = copy_check
        self.embedder = OnnxEmbedder(model_path, threads=threads, device=device)
        self.gallery = Gallery.load(gallery_path, model=self.embedder.info)
        if self.gallery.info.calibration is None:
            raise ValueError(f"gallery {gallery_path} has no calibration; build it with `knockoff index --calibration ...`")
        self.local = LocalEvidence.of(model_path, self.embedder.info, self.gallery, threads, device) if regions else None
        self.versions = {"model_version": self.embedder.info.version, "index_version": self.gallery.info.version}
        self.brands = product_brands(self.gallery)
        self.signals = signals_file(gallery_path)

    @property
    def metadata(self) -> dict[str, str]:
        """What a results file says of its run: the versions, the held-back scores its listings
        are calibrated from, the brand's catalogue and the listing signals' ratios (`knockoff listings`)."""
        held_back = self.gallery.info.held_back_scores
        catalogue = self.gallery.info.catalogue
        return {**self.versions, **({"held_back_scores": json.dumps(held_back, separators=(",", ":"))} if held_back else {}),
                **({"catalogue": json.dumps(catalogue, separators=(",", ":"))} if catalogue else {}),
                **({"listing_signals": self.signals.read_text()} if self.signals else {})}

    @property
    def input_size(self) -> int:
        return self.embedder.info.input_size

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.embedder.embed(images)

    def rows(self, batch: DecodedBatch, embeddings: np.ndarray) -> pa.Table:
        """The batch's result rows, each with its embedding (PART_SCHEMA; null where it failed)."""
        claimed = [record.product for record, error in zip(batch.records, batch.errors) if error is None]
        matches = match(self.gallery, embeddings, claimed=claimed, pixels=batch.images if self.copy_check else None)
        regions = self.local.regions(batch.images, matches.status, matches.product) if self.local else None
        rows = result_table(batch, matches, self.versions, self.brands, regions)
        return rows.append_column(PART_SCHEMA.field("embedding"), [embedding_column(batch.errors, embeddings)])


SIGNALS_FILE = "listing-signals.json"  # listing signals' likelihood ratios (knockoff/listings/signals.py)


def signals_file(gallery_path: Path) -> Path | None:
    """The signal ratios beside the gallery folder, else the shipped ones (models/), else None."""
    beside = Path(gallery_path).parent / SIGNALS_FILE
    if beside.is_file():
        return beside
    return next((place for place in model_places(DEFAULT_GALLERY.parent / SIGNALS_FILE) if place.is_file()), None)


def run_identity(inputs: list[str], scorer: Scorer) -> dict[str, object]:
    """What an interrupted run and its --resume must share."""
    resolved = [str(Path(spec).resolve()) if Path(spec).exists() else spec for spec in inputs]
    return {"inputs": resolved, **scorer.versions}


Rows = pa.Table  # PART_SCHEMA
# Fills a run: screens the records it is given and passes their rows, in order, to `write`.
Engine = Callable[[Iterator[ImageRecord], Callable[[Rows], None]], None]


def screen(
    inputs: list[str],
    out: Path,
    model_path: Path = DEFAULT_MODEL,
    gallery_path: Path = DEFAULT_GALLERY,
    options: ScreenOptions = ScreenOptions(),
) -> ScreenSummary:
    scorer = Scorer(model_path, gallery_path, options.session_threads, options.device, options.copy_check, options.regions)
    return write_run(inputs, Path(out), scorer, options,
                     lambda records, write: run_pipeline(records, scorer, options, write))


def write_run(inputs: list[str], out: Path, scorer: Scorer, options: ScreenOptions, engine: Engine) -> ScreenSummary:
    """What every engine shares: resume checks, committed parts, progress, the final merge."""
    if options.resume and out.exists() and not parts_dir(out).exists():
        raise ValueError(f"nothing to resume: {out} is already complete (screen to another file, or delete it)")
    parts = PartWriter(out, run_identity(inputs, scorer), options.resume, options.rows_per_part, scorer.metadata,
                       options.duplicates)
    try:
        with tqdm(desc="screen", unit="img", initial=parts.done) as progress:
            def write(rows: Rows) -> None:
                parts.write(rows)
                progress.update(len(rows))

            engine(parts.skip_done(iter_inputs(inputs)), write)
        merged = parts.finish()
    finally:
        parts.close()
    return ScreenSummary(merged.rows, merged.flagged, merged.failed, out, *scorer.versions.values(), parts.done)


def run_pipeline(records: Iterable[ImageRecord], scorer: Scorer, options: ScreenOptions,
                 sink: Callable[[pa.Table], None]) -> None:
    """Decode, embed and post-process overlapping; `sink` gets each batch's rows in input order.

    The model streams (one session, called from `options.streams` threads) take runs of at
    most `options.run_batch` photos, not whole batches: a batch is searched, scored and
    written whole, which is cheaper per photo in large batches, while the model runs at the
    size it runs fastest, and the last batch of the input is shared among the streams rather
    than left to one. The post stage (FAISS search, scoring, building rows, `sink`) runs in
    one thread beside the model, at most `post_queue` batches behind it. Its first error
    stops the run: no later batch reaches `sink`, so the output never has a gap.
    """
    failed = Event()

    def post(batch: DecodedBatch, embeddings: np.ndarray) -> None:
        if failed.is_set():
            return
        try:
            sink(scorer.rows(batch, embeddings))
        except BaseException:
            failed.set()
            raise

    batches = decode_batches(records, scorer.input_size, options.batch_size, options.workers, options.prefetch)
    with ThreadPoolExecutor(max_workers=options.streams, thread_name_prefix="model") as model, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="post", initializer=_set_search_threads,
                               initargs=(options.post_search_threads,)) as poster:
        embedding: deque[tuple[DecodedBatch, list[Future[np.ndarray]]]] = deque()
        pending: deque[Future[None]] = deque()

        def hand_on_oldest() -> None:  # in input order: the oldest batch's embeddings go to post
            batch, runs = embedding.popleft()
            pending.append(poster.submit(post, batch, np.concatenate([run.result() for run in runs])))
            while len(pending) > options.post_queue:
                pending.popleft().result()

        def queued_behind_oldest() -> int:  # runs that keep the streams busy while the oldest is awaited
            return sum(len(runs) for _, runs in itertools.islice(embedding, 1, None))

        try:
            for batch in batches:
                embedding.append((batch, [model.submit(scorer.embed, images)
                                          for images in _runs(batch.images, options.run_batch)]))
                while queued_behind_oldest() >= options.streams:
                    hand_on_oldest()
            while embedding:
                hand_on_oldest()
            while pending:
                pending.popleft().result()
        except BaseException:
            failed.set()
            for _, runs in embedding:
                for run in runs:
                    run.cancel()
            raise


def _runs(images: np.ndarray, run_batch: int | None) -> list[np.ndarray]:
    """A batch's images in model runs of at most `run_batch` (None: one run, empty too where
    nothing decoded)."""
    if not run_batch or len(images) <= run_batch:
        return [images]
    return [images[start:start + run_batch] for start in range(0, len(images), run_batch)]


def _set_search_threads(count: int | None) -> None:
    """Set this thread's FAISS (OpenMP) threads; an OpenMP thread count is per calling thread,
    so it must be set in the thread that searches."""
    if count:
        faiss.omp_set_num_threads(count)


def embedding_column(errors: list[str | None], embeddings: np.ndarray) -> pa.Array:
    """One list of float16 per row: the embedding of each decoded photo, in order, null for a failed one."""
    failed = np.array([error is not None for error in errors], bool)
    lengths = np.where(failed, 0, embeddings.shape[1] if len(embeddings) else 0)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    values = pa.array(np.ascontiguousarray(embeddings, np.float16).ravel())
    return pa.ListArray.from_arrays(offsets, values, mask=pa.array(failed))


def product_brands(gallery: Gallery) -> dict[str, str]:
    """Each product's brand, as its references name it."""
    products = gallery.references.column("product").to_pylist()
    brands = gallery.references.column("brand").to_pylist()
    return {product: brand for product, brand in zip(products, brands) if product and brand}


def result_table(batch: DecodedBatch, matches: MatchBatch, versions: dict[str, str], brands: dict[str, str],
                 regions: list[list[dict] | None] | None = None) -> pa.Table:
    """One output row per record of the batch (RESULT_SCHEMA), built column by column; decoded
    records take their match in order, a failed one has status "error" and no match.
    `regions`: each decoded photo's local evidence (None: not computed)."""
    records, n = batch.records, len(batch.records)
    ok = batch.ok
    # Each record's place among the decoded photos; `take` with it spreads a column of matches
    # over the batch, null where a record failed (`spread` does the same for a Python list).
    at = np.cumsum(ok) - 1
    place = pa.array(at, pa.int64(), mask=~ok)

    def spread(values: list, failed: object = None) -> list:
        return [values[at[i]] if ok[i] else failed for i in range(n)]

    # a copy of a genuine reference keeps its score (what its photograph looks like) but no flag
    scored = np.array([status in ("scored", "copy") for status in matches.status], bool)
    claimed = [record.product for record in records]
    matched, product = spread(matches.matched_product), spread(matches.product)
    columns: dict[str, pa.Array | list] = {
        "listing_id": [record.listing_id for record in records],
        **{name: [getattr(record, name) for record in records] for name in LISTING_FIELDS},
        "path": [record.path for record in records],
        "source": [record.source for record in records],
        "status": spread(matches.status, "error"),
        "status_reason": spread(matches.reason),
        "score": _numbers(np.where(scored, matches.score, np.nan)).take(place),
        "flagged": pa.array(np.asarray(matches.flagged, bool)).take(place),
        "threshold": _numbers(matches.threshold).take(place),
        "calibration_level": spread(matches.level),
        "raw_score": pa.array(np.asarray(matches.raw, np.float32)).take(place),
        "product": product,
        "product_similarity": _numbers(matches.product_similarity).take(place),
        "matched_product": matched,
        "nearest_catalogued": _numbers(matches.nearest_catalogue).take(place),
        "nearest_unmonitored": _numbers(matches.nearest_background).take(place),
        "claimed_product": claimed,
        "product_mismatch": [_mismatch(c, m) if ok[i] else None for i, (c, m) in enumerate(zip(claimed, matched))],
        "brand": [(record.brand or brands.get(p)) if ok[i] else record.brand for i, (record, p) in enumerate(zip(records, product))],
        "label": [record.authenticity for record in records],
        "neighbors": matches.neighbors.take(place),
        "nearest_genuine": matches.nearest_genuine.take(place),
        "nearest_fake": matches.nearest_fake.take(place),
        "reference_copy": spread(matches.copy_of) if matches.copy_of is not None else [None] * n,
        "regions": spread(regions) if regions is not None else [None] * n,
        "error": list(batch.errors),
        **{name: [version] * n for name, version in versions.items()},
    }
    arrays = [pa.array(columns[field.name], field.type) if isinstance(columns.get(field.name), list)
              else columns.get(field.name, pa.nulls(n, field.type)) for field in RESULT_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=RESULT_SCHEMA)


def _numbers(values: np.ndarray) -> pa.Array:
    """A float32 column; null for NaN and for the -1 that stands for 'no such reference'."""
    values = np.asarray(values, np.float64)
    return pa.array(values.astype(np.float32), pa.float32(), mask=np.isnan(values) | (values <= -1.0))


def _mismatch(claimed: str | None, matched: str | None) -> bool | None:
    if claimed is None or matched is None:
        return None
    return claimed.strip().casefold() != matched.strip().casefold()
