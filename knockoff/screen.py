"""`knockoff screen`: score listing photos for counterfeits. Never imports torch.

inputs (folders, globs, manifests) -> records -> parallel decode -> batched onnxruntime
embedding -> FAISS search -> calibrated score + evidence -> rows, written batch by batch.
An image that cannot be read becomes a row with `error` set; the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from knockoff.batches import DecodedBatch, decode_batches
from knockoff.data import read_source
from knockoff.embedding import OnnxEmbedder
from knockoff.gallery import Gallery
from knockoff.matching import MatchBatch, match
from knockoff.records import ImageRecord
from knockoff.results import RESULT_SCHEMA, ResultWriter

DEFAULT_MODEL = Path("models/knockoff.onnx")
DEFAULT_GALLERY = Path("models/gallery")


@dataclass(frozen=True)
class ScreenOptions:
    batch_size: int = 32
    decode_workers: int = 2
    threads: int | None = None  # onnxruntime intra-op threads; None = all cores


@dataclass(frozen=True)
class ScreenSummary:
    screened: int
    flagged: int
    failed: int
    out: Path
    model_version: str
    index_version: str

    def line(self) -> str:
        return (
            f"screened {self.screened} images: {self.flagged} flagged, {self.failed} failed "
            f"-> {self.out} (model {self.model_version}, gallery {self.index_version})"
        )


def iter_inputs(inputs: Iterable[str]) -> Iterator[ImageRecord]:
    for spec in inputs:
        yield from read_source(spec)


def screen(
    inputs: list[str],
    out: Path,
    model_path: Path = DEFAULT_MODEL,
    gallery_path: Path = DEFAULT_GALLERY,
    options: ScreenOptions = ScreenOptions(),
) -> ScreenSummary:
    embedder = OnnxEmbedder(model_path, threads=options.threads)
    gallery = Gallery.load(gallery_path, model=embedder.info)
    if gallery.info.calibration is None:
        raise ValueError(f"gallery {gallery_path} has no calibration; build it with `knockoff index --calibration ...`")
    versions = {"model_version": embedder.info.version, "index_version": gallery.info.version}
    brands = product_brands(gallery)
    writer = ResultWriter(out, metadata=versions)
    flagged = failed = 0
    try:
        batches = decode_batches(iter_inputs(inputs), embedder.info.input_size, options.batch_size, options.decode_workers)
        with tqdm(desc="screen", unit="img") as progress:
            for batch in batches:
                matches = match(gallery, embedder.embed(batch.images))
                rows = result_rows(batch, matches, gallery, versions, brands)
                writer.write(rows)
                flagged += sum(bool(row["flagged"]) for row in rows)
                failed += sum(row["error"] is not None for row in rows)
                progress.update(len(rows))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return ScreenSummary(writer.rows, flagged, failed, out, *versions.values())


def product_brands(gallery: Gallery) -> dict[str, str]:
    """Each product's brand, as its references name it."""
    products = gallery.references.column("product").to_pylist()
    brands = gallery.references.column("brand").to_pylist()
    return {product: brand for product, brand in zip(products, brands) if product and brand}


def result_rows(batch: DecodedBatch, matches: MatchBatch, gallery: Gallery, versions: dict[str, str],
                brands: dict[str, str]) -> list[dict]:
    """One output row per record of the batch; decoded records take their match in order."""
    threshold = gallery.info.calibration.threshold
    rows, position = [], 0
    for record, error in zip(batch.records, batch.errors):
        row = dict.fromkeys(RESULT_SCHEMA.names)
        row.update({
            "listing_id": record.listing_id,
            "path": record.path,
            "source": record.source,
            "claimed_product": record.product,
            "brand": record.brand,
            "label": record.authenticity,
            "threshold": threshold,
            "error": error,
            **versions,
        })
        if error is None:
            i, position = position, position + 1
            product = matches.product[i]
            row.update(
                score=float(matches.score[i]),
                flagged=bool(matches.flagged[i]),
                raw_score=float(matches.raw[i]),
                product=product,
                product_similarity=float(matches.product_similarity[i]),
                product_mismatch=_mismatch(record.product, product),
                brand=record.brand or brands.get(product),
                neighbors=matches.neighbors[i],
                nearest_genuine=matches.nearest_genuine[i],
                nearest_fake=matches.nearest_fake[i],
            )
        rows.append(row)
    return rows


def _mismatch(claimed: str | None, matched: str | None) -> bool | None:
    if claimed is None or matched is None:
        return None
    return claimed.strip().casefold() != matched.strip().casefold()
