"""The reference gallery: a FAISS index of reference embeddings plus who each row is.

Saved as a folder:
- `index-<version>.faiss`        the FAISS index (type from an `index_factory` string, inner product),
- `references-<version>.parquet` row -> path, listing_id, product, authenticity, brand, source,
- `thumbnails-<digest>.parquet`  the catalogued references' copy-check thumbnails (gallery/copies.py),
                                 named by their content, so an unchanged set is the same file,
- `patches-<digest>.npz`         per product and side, the references' patch features that local
                                 evidence matches regions against (gallery/patches.py),
- `gallery.json`                 versions (its own, and the model's it belongs to), index type,
                                 scorer parameters, calibration, and the file names.
Saving writes the new version's files first and switches `gallery.json` to them in one
atomic rename, so a service reloading the gallery meanwhile reads the old version or the
new one, never a mix. A gallery only answers for embeddings of the model it was built with.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from knockoff.data import portable_path
from knockoff.data.records import FAKE, GENUINE, UNMONITORED, ImageRecord
from knockoff.gallery.copies import CopyParams, ReferenceCopies, merge_thumbnails
from knockoff.gallery.patches import PatchBanks
from knockoff.runtime.embedding import ModelInfo
from knockoff.scoring import Calibration, OpenWorld, ScorerParams

FORMAT = 2
REFERENCE_FIELDS = ("path", "listing_id", "product", "authenticity", "brand", "source")
INFO_FILE = "gallery.json"


class ModelMismatchError(ValueError):
    """Embeddings of one model searched against a gallery built with another."""


@dataclass
class GalleryInfo:
    version: str
    model_version: str
    model_name: str
    embedding_dim: int
    index_factory: str
    search_parameters: str
    count: int
    created: str
    sources: list[str] = field(default_factory=list)
    scorer: ScorerParams = field(default_factory=ScorerParams)
    calibration: Calibration | None = None
    # per-product support, calibration and the no-match threshold (scoring/open_world.py)
    open_world: OpenWorld | None = None
    files: dict[str, str] = field(default_factory=dict)  # 'index', 'references' -> file names
    format: int = FORMAT
    # held-back photos left out of calibration as copies of a reference (portable paths)
    excluded_copies: list[str] = field(default_factory=list)
    # held-back photos' verdicts pooled per product, which listing thresholds are set from on
    # each run (knockoff/scoring/held_back.py HeldBackScores); every results file carries them
    held_back_scores: dict | None = None
    # the copy check against references (gallery/copies.py); None: the gallery has no thumbnails
    copies: CopyParams | None = None
    # [first, end) rows of the calibration photos that joined as references once calibrated
    calibration_rows: list[int] | None = None
    # the brand's catalogue (knockoff/data/catalogue.py Catalogue.to_dict): retail prices,
    # official photos (as references' paths), authorised sellers; every results file carries it
    catalogue: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> GalleryInfo:
        values = dict(values)
        values["scorer"] = ScorerParams(**values["scorer"])
        if values.get("calibration"):
            values["calibration"] = Calibration(**values["calibration"])
        if values.get("open_world"):
            values["open_world"] = OpenWorld.from_dict(values["open_world"])
        if values.get("copies"):
            values["copies"] = CopyParams(**values["copies"])
        return cls(**values)


class Gallery:
    def __init__(self, index: faiss.Index, references: pa.Table, info: GalleryInfo, thumbnails: pa.Table | None = None,
                 patches: PatchBanks | None = None) -> None:
        if index.ntotal != references.num_rows:
            raise ValueError(f"index has {index.ntotal} rows but the reference table {references.num_rows}")
        self.index = index
        self.references = references
        self.info = info
        self.thumbnails = thumbnails  # copy-check thumbnails of the catalogued references (THUMBNAIL_SCHEMA)
        self.patches = patches  # the references' patch banks, for local evidence (None: the gallery has none)
        self._derive_lookups()

    def _derive_lookups(self) -> None:
        """Per-row arrays the scorer reads for every search."""
        authenticity = self.references.column("authenticity").to_numpy(zero_copy_only=False)
        self.is_fake = authenticity == FAKE
        self.is_genuine = authenticity == GENUINE
        self.is_background = authenticity == UNMONITORED  # unmonitored products: never judged
        self.is_catalogue = self.is_fake | self.is_genuine
        products = self.references.column("product").to_pylist()
        self.product_names, self.product_codes = np.unique(
            np.array([p if p is not None else "" for p in products], dtype=object), return_inverse=True
        )
        self.catalogue_products = sorted({p for p, c in zip(products, self.is_catalogue) if c and p})
        self._code_of = {name: code for code, name in enumerate(self.product_names)}
        self._selectors: dict[tuple, tuple[faiss.IDSelector, int]] = {}  # restricted searches, built on first use
        self._copies: ReferenceCopies | None = None
        self._rows_by_path: dict[str, np.ndarray] | None = None

    @property
    def reference_copies(self) -> ReferenceCopies | None:
        """The copy check against the references, when the gallery has thumbnails for it."""
        if self._copies is None and self.thumbnails is not None and self.info.copies is not None:
            self._copies = ReferenceCopies(self.thumbnails, self.references.column("path").to_pylist(), self.info.copies)
        return self._copies

    def set_thumbnails(self, thumbnails: pa.Table, params: CopyParams | None = None) -> None:
        """Add references' thumbnails (for `add`ed references, or all at once); the version changes."""
        self.thumbnails = merge_thumbnails(self.thumbnails, thumbnails)
        self.info.copies = params or self.info.copies or CopyParams()
        self._copies = None
        self.refresh_version()

    def set_patches(self, patches: PatchBanks) -> None:
        """The references' patch banks (built, or extended for `add`ed references); the version changes."""
        if len(patches.rows) and int(patches.rows.max()) >= self.references.num_rows:
            raise ValueError(f"patch banks name reference row {int(patches.rows.max())} of a gallery of {self.references.num_rows}")
        self.patches = patches
        self.refresh_version()

    def rows_of_path(self, path: str) -> np.ndarray:
        """The rows of references stored under `path` (a photo added twice has two)."""
        if self._rows_by_path is None:
            by_path: dict[str, list[int]] = {}
            for row, stored in enumerate(self.references.column("path").to_pylist()):
                by_path.setdefault(stored, []).append(row)
            self._rows_by_path = {key: np.array(value, np.int64) for key, value in by_path.items()}
        return self._rows_by_path.get(path, np.zeros(0, np.int64))

    def members(self, key: tuple) -> np.ndarray:
        """Rows of a subset: (FAKE,) / (GENUINE,) a side; ('background',); ('catalogue',);
        (product, side) one product's genuine references or known fakes."""
        if key == ("background",):
            return self.is_background
        if key == ("catalogue",):
            return self.is_catalogue
        side = self.is_fake if key[-1] == FAKE else self.is_genuine
        if len(key) == 1:
            return side
        code = self._code_of.get(key[0])
        return side & (self.product_codes == code) if code is not None else np.zeros_like(side)

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray,
        records: list[ImageRecord],
        model: ModelInfo,
        index_factory: str = "Flat",
        search_parameters: str = "",
        scorer: ScorerParams | None = None,
        sources: list[str] | None = None,
        data_root: Path | None = None,
    ) -> Gallery:
        if len(records) != len(embeddings):
            raise ValueError(f"{len(records)} records but {len(embeddings)} embeddings")
        if embeddings.shape[1] != model.embedding_dim:
            raise ModelMismatchError(f"embeddings are {embeddings.shape[1]}-d, model {model.version} makes {model.embedding_dim}-d")
        index = faiss.index_factory(model.embedding_dim, index_factory, faiss.METRIC_INNER_PRODUCT)
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        if not index.is_trained:
            _check_training_size(index, index_factory, len(vectors))
            index.train(vectors)
        index.add(vectors)
        _apply_search_parameters(index, search_parameters)
        references = _reference_table(records, data_root)
        info = GalleryInfo(
            version="",
            model_version=model.space,
            model_name=model.name,
            embedding_dim=model.embedding_dim,
            index_factory=index_factory,
            search_parameters=search_parameters,
            count=len(records),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            sources=list(sources or []),
            scorer=scorer or ScorerParams(),
        )
        gallery = cls(index, references, info)
        gallery.refresh_version()
        return gallery

    def refresh_version(self) -> None:
        """The version hashes what decides a score: model, index type, references, scorer, calibration."""
        self.info.version = _content_version(self.info, self.references, self.thumbnails, self.patches)

    def add(self, embeddings: np.ndarray, records: list[ImageRecord], source: str, data_root: Path | None = None) -> None:
        """Append references (new genuine photos, newly confirmed fakes); the version changes."""
        if len(records) != len(embeddings):
            raise ValueError(f"{len(records)} records but {len(embeddings)} embeddings")
        if len(records) == 0:
            return
        if embeddings.shape[1] != self.info.embedding_dim:
            raise ModelMismatchError(f"embeddings are {embeddings.shape[1]}-d, gallery {self.info.version} holds {self.info.embedding_dim}-d")
        self.index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
        self.references = pa.concat_tables([self.references, _reference_table(records, data_root)])
        self.info.count = self.references.num_rows
        self.info.sources = [*self.info.sources, source]
        self._derive_lookups()
        self.refresh_version()

    def without_calibration_photos(self) -> Gallery:
        """The gallery as calibrated: without the calibration photos added after (evaluation
        judges those very photos), patch banks too. The same gallery when none were added."""
        if not self.info.calibration_rows:
            return self
        first, end = self.info.calibration_rows
        keep = np.r_[0:first, end:self.index.ntotal]
        vectors = self.index.reconstruct_n(0, self.index.ntotal)[keep]
        index = faiss.index_factory(self.info.embedding_dim, self.info.index_factory, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        _apply_search_parameters(index, self.info.search_parameters)
        info = GalleryInfo.from_dict({**self.info.to_dict(), "count": len(keep), "calibration_rows": None})
        patches = self.patches.without_rows(first, end) if self.patches is not None else None
        return Gallery(index, self.references.take(pa.array(keep)), info, self.thumbnails, patches)

    def check_model(self, model: ModelInfo) -> None:
        """Refuse a model from another embedding space (an int8 export shares its fp32 model's)."""
        if model.space != self.info.model_version:
            raise ModelMismatchError(
                f"gallery {self.info.version} was built with model {self.info.model_version}, "
                f"not {model.version} ({model.name}, {model.precision}); rebuild it with `knockoff index` for this model"
            )

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, reference rows), each (n, k), most similar first; row -1 = none."""
        k = max(1, min(k, self.index.ntotal))
        return self.index.search(np.ascontiguousarray(embeddings, dtype=np.float32), k)

    def search_side(self, embeddings: np.ndarray, k: int, authenticity: str) -> tuple[np.ndarray, np.ndarray]:
        """Like search, among the genuine references or the known fakes only."""
        return self.search_among(embeddings, k, (authenticity,))

    def search_among(self, embeddings: np.ndarray, k: int, key: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Like search, restricted to the rows of a subset (`members`)."""
        if key not in self._selectors:
            rows = np.flatnonzero(self.members(key)).astype(np.int64)
            self._selectors[key] = (faiss.IDSelectorBatch(rows), len(rows))
        selector, count = self._selectors[key]
        if count == 0 or len(embeddings) == 0:
            return np.zeros((len(embeddings), 0), np.float32), np.zeros((len(embeddings), 0), np.int64)
        keep_alive: list = []
        params = _restricted_parameters(self.index, selector, keep_alive)
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        return self.index.search(vectors, min(k, count), params=params)

    def reference_rows(self, rows: np.ndarray) -> dict[int, dict]:
        """Reference rows by number, read from the table for just these rows: a gallery of
        millions is never copied into Python objects."""
        wanted = np.unique(np.asarray(rows, dtype=np.int64))
        return dict(zip(wanted.tolist(), self.references.take(pa.array(wanted)).to_pylist()))

    def save(self, directory: Path) -> None:
        self.refresh_version()
        directory.mkdir(parents=True, exist_ok=True)
        self.info.files = {"index": f"index-{self.info.version}.faiss", "references": f"references-{self.info.version}.parquet"}
        _write_atomically(directory / self.info.files["index"], lambda tmp: faiss.write_index(self.index, str(tmp)))
        _write_atomically(directory / self.info.files["references"], lambda tmp: pq.write_table(self.references, tmp))
        if self.thumbnails is not None:
            self.info.files["thumbnails"] = f"thumbnails-{_table_digest(self.thumbnails)}.parquet"
            if not (directory / self.info.files["thumbnails"]).is_file():
                _write_atomically(directory / self.info.files["thumbnails"], lambda tmp: pq.write_table(self.thumbnails, tmp))
        if self.patches is not None:
            self.info.files["patches"] = f"patches-{self.patches.digest()}.npz"
            if not (directory / self.info.files["patches"]).is_file():
                _write_atomically(directory / self.info.files["patches"], self.patches.save)
        info_text = json.dumps(self.info.to_dict(), indent=2) + "\n"
        _write_atomically(directory / INFO_FILE, lambda tmp: tmp.write_text(info_text))  # the switch
        for stale in directory.iterdir():  # earlier versions' files
            if (stale.is_file() and stale.name not in (INFO_FILE, *self.info.files.values())
                    and stale.name.startswith(("index", "references", "thumbnails", "patches"))):
                stale.unlink()

    @classmethod
    def load(cls, directory: Path, model: ModelInfo | None = None) -> Gallery:
        directory = Path(directory)
        info = read_info(directory)
        index = _read_part(directory, info.files["index"], lambda path: faiss.read_index(str(path)))
        if index.ntotal != info.count:
            raise ValueError(f"{directory}: index holds {index.ntotal} references, gallery.json says {info.count}")
        thumbnails = _read_part(directory, info.files["thumbnails"], pq.read_table) if "thumbnails" in info.files else None
        patches = _read_part(directory, info.files["patches"], PatchBanks.read) if "patches" in info.files else None
        gallery = cls(index, _read_part(directory, info.files["references"], pq.read_table), info, thumbnails, patches)
        _apply_search_parameters(gallery.index, info.search_parameters)
        if model is not None:
            gallery.check_model(model)
        return gallery


def read_info(directory: Path) -> GalleryInfo:
    """A gallery's description (versions, index type, scorer, calibration) without its index."""
    directory = Path(directory)
    if not (directory / INFO_FILE).is_file():
        raise FileNotFoundError(f"no gallery in {directory} (run `dvc repro` or `knockoff index`)")
    info = GalleryInfo.from_dict(json.loads((directory / INFO_FILE).read_text()))
    if info.format != FORMAT:
        raise ValueError(f"{directory}: gallery format {info.format}, this Knockoff reads {FORMAT}")
    return info


LOCK_FILE = ".lock"


@contextmanager
def writing(directory: Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the gallery's write lock (an exclusive lock on `.lock` in its folder, across
    processes) for a whole read-change-save: a second writer waits for the first, so no
    reference is lost and no writer deletes files another's gallery.json names. Waits at
    most `timeout_s`, then says who to wait for."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{directory} is being written by another process (its {LOCK_FILE} is held) for "
                                       f"over {timeout_s:.0f} s; try again when it has finished") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_part(directory: Path, name: str, read: Callable[[Path], object]):
    """One of the gallery's files, or one clear error naming it and what to do."""
    path = directory / name
    missing = FileNotFoundError(f"{path} is missing (gallery.json names it): rebuild the gallery with `knockoff index`")
    if not path.is_file():
        raise missing
    try:
        return read(path)
    except (RuntimeError, OSError, ValueError) as error:  # faiss: RuntimeError; pyarrow: ArrowInvalid (a ValueError)
        # removed while being read: a newer version was saved meanwhile (and may since have
        # been saved again under this very name, so the error says it, not the folder)
        if not path.is_file() or isinstance(error, FileNotFoundError) or "No such file" in str(error):
            raise missing from None
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is damaged ({reason[:200]}): rebuild the gallery with `knockoff index`") from None


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a hidden temporary beside `path`, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    os.replace(temporary, path)


def _restricted_parameters(index: faiss.Index, selector: faiss.IDSelector, keep_alive: list) -> faiss.SearchParameters:
    """Search parameters that restrict a search to `selector`'s rows and keep the index's own
    search settings (nprobe, efSearch), which a parameters object would otherwise reset."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        params = faiss.SearchParametersPreTransform()
        params.index_params = _restricted_parameters(index.index, selector, keep_alive)
    elif isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)
    elif isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)
    else:
        params = faiss.SearchParameters(sel=selector)
    keep_alive.append(params)  # the C++ side holds raw pointers to nested parameters
    return params


def _check_training_size(index: faiss.Index, index_factory: str, count: int) -> None:
    """IVF learns its lists from the references; too few make poor lists (faiss only warns)."""
    try:
        lists = faiss.extract_index_ivf(index).nlist
    except RuntimeError:  # not an IVF index
        return
    if count < 39 * lists:
        raise ValueError(f"index {index_factory!r} needs at least {39 * lists} references to learn its {lists} lists, "
                         f"got {count}: use Flat, or fewer lists (IVF{max(1, count // 39)},...)")


def _apply_search_parameters(index: faiss.Index, search_parameters: str) -> None:
    if search_parameters:  # e.g. "nprobe=16" for IVF, "efSearch=128" for HNSW
        faiss.ParameterSpace().set_index_parameters(index, search_parameters)


def _reference_table(records: list[ImageRecord], data_root: Path | None) -> pa.Table:
    columns = {name: [getattr(r, name) for r in records] for name in REFERENCE_FIELDS}
    if data_root is not None:
        columns["path"] = [portable_path(p, data_root) for p in columns["path"]]
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def _table_digest(table: pa.Table) -> str:
    """A digest of the thumbnails' content (paths, stand-ins, bytes), however the table is laid out."""
    digest = hashlib.sha256()
    for path, stand_in, thumbnail in zip(*(table.column(name).to_pylist() for name in ("path", "stand_in", "thumbnail"))):
        digest.update(f"{path}\0{stand_in}\0{len(thumbnail or b'')}\0".encode())
        digest.update(thumbnail or b"")
    return digest.hexdigest()[:16]


_LATER_FIELDS = ("catalogue",)


def _content_version(info: GalleryInfo, references: pa.Table, thumbnails: pa.Table | None,
                     patches: PatchBanks | None = None) -> str:
    decisive = {k: v for k, v in info.to_dict().items() if k not in ("version", "created", "files")
                and not (k in _LATER_FIELDS and v is None)}  # a gallery from before them keeps its version
    digest = hashlib.sha256(json.dumps(decisive, sort_keys=True).encode())
    for name in REFERENCE_FIELDS:
        digest.update(json.dumps(references.column(name).to_pylist()).encode())
    if thumbnails is not None:
        digest.update(_table_digest(thumbnails).encode())
    if patches is not None:
        digest.update(patches.digest().encode())
    return digest.hexdigest()[:16]
