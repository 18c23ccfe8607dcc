"""Stage `index`: embed the reference photos, build the FAISS gallery, calibrate the verdicts.

References are genuine product photos and known fakes (any source with product and
authenticity labels), plus photos of unmonitored products as background references.
Calibration screens held-back labelled photos against the new gallery, each judged against
its own product, and fits per product (scoring/open_world.py): the support bound, and Platt
scaling with the flag threshold for the target precision (known fakes) or the cold-start
distance threshold (genuine references only). Held-back unmonitored photos set the no-match
threshold. A global Platt fit is kept too, as the last fallback and for older readers.

A held-back photo that is a *copy* of a reference (the same photograph rotated, mirrored,
cropped or re-encoded, as dataset augmentations and copied listings are) finds itself in the
gallery: it says nothing about unseen photos and would set every threshold too low. So
calibration reads new photographs only: with photograph groups (`knockoff groups`), a
held-back photo whose group holds a reference is left out, as is a group whose copies carry
conflicting labels; without them, copies are looked for among each photo's nearest
references (knockoff/images/copies.py). The gallery records which (`excluded_copies`).

The gallery also keeps a thumbnail of each catalogued photograph, so that screening can
tell a copy of a reference from the gallery alone (gallery/copies.py), and the loosest
cosine at which a held-back copy met the reference it copies (less a margin): candidates
below it are never verified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from knockoff.data import data_root, portable_path, read_sources
from knockoff.data.catalogue import Catalogue, product_key
from knockoff.data.groups import conflicting_groups, group_keys, new_photographs, read_groups
from knockoff.data.records import FAKE, GENUINE, OFFICIAL, UNMONITORED, ImageRecord, class_name
from knockoff.data.roboflow import cells_inside, product_boxes
from knockoff.gallery.copies import CopyParams, reference_thumbnails
from knockoff.gallery.matching import match
from knockoff.gallery.patches import OBJECTNESS_CELLS, PatchBanks, fit_objectness, stack
from knockoff.gallery.store import Gallery, ModelMismatchError, writing
from knockoff.runtime.batches import decode_batches
from knockoff.runtime.embedding import OnnxEmbedder, embed_records
from knockoff.runtime.patches import PatchModel, patches_path
from knockoff.scoring import Calibration, HeldBack, OpenWorld, OpenWorldParams, ScorerParams, decide, fit_calibration, fit_open_world
from knockoff.scoring.held_back import HeldBackScores, fit_held_back_scores


@dataclass(frozen=True)
class IndexConfig:
    factory: str = "Flat"
    search_parameters: str = ""
    references: tuple[str, ...] = ()
    # held-back labelled photos (never references): one spec or several
    calibration: str | tuple[str, ...] | None = None
    # photos of products nobody monitors: every other one (by path) becomes a background
    # reference, the rest are held back to set the no-match threshold
    unmonitored: tuple[str, ...] = ()
    target_precision: float = 0.95
    open_world: OpenWorldParams = field(default_factory=OpenWorldParams)
    # Let the labelled calibration photos join the gallery once calibration is fit. More
    # references help unseen photos a little (sneakers: +0.002 ROC-AUC, +0.005 recall at 95%
    # precision on held-back halves, threshold precision kept), but afterwards the
    # calibration split can no longer serve as unseen photos (demos, checks).
    add_calibration_photos: bool = False
    scorer: ScorerParams = field(default_factory=ScorerParams)
    batch_size: int = 32
    workers: int = 2
    # photograph groups (`knockoff groups`): held-back photos of a reference's group are left out
    groups: str = ""
    # without groups: leave out held-back photos found to copy one of their nearest references
    drop_copies: bool = True
    copy_candidates: int = 5  # nearest references checked per photo
    copy_check: CopyParams = field(default_factory=CopyParams)  # screening's copy check (its similarity is fit)
    copy_margin: float = 0.05  # below the loosest held-back copy's cosine to its reference
    # the brand's catalogue CSV and its rates table (knockoff/data/catalogue.py), added once the
    # gallery is built (`knockoff index` does), so that a rebuilt gallery keeps them
    catalogue: str | None = None
    rates: str | None = None


def labelled(records: list[ImageRecord], what: str) -> list[ImageRecord]:
    kept = [r for r in records if r.authenticity is not None]
    if len(kept) < len(records):
        print(f"{what}: skipping {len(records) - len(kept)} images without a genuine/fake label")
    return kept


def build_gallery(embedder: OnnxEmbedder, config: IndexConfig, references: list[ImageRecord]) -> tuple[Gallery, np.ndarray]:
    """The gallery, and its reference embeddings in row order (for what calibration derives from them)."""
    embeddings, kept, failures = embed_records(embedder, references, config.batch_size, config.workers, "references")
    _report_failures("references", failures)
    if not kept:
        raise ValueError("no reference image could be read")
    gallery = Gallery.build(
        embeddings, kept, embedder.info, config.factory, config.search_parameters,
        config.scorer, sources=[*config.references, *config.unmonitored], data_root=data_root(),
    )
    return gallery, embeddings


def calibrate(gallery: Gallery, embeddings: np.ndarray, photos: list[ImageRecord], config: IndexConfig) -> Calibration:
    """The global Platt fit: every held-back photo judged against its own product."""
    matches = match(gallery, embeddings, with_evidence=False, claimed=[r.product for r in photos])
    is_fake = np.array([r.authenticity == FAKE for r in photos])
    return fit_calibration(matches.raw, is_fake, config.target_precision, source=",".join(calibration_specs(config)))


def calibration_specs(config: IndexConfig) -> list[str]:
    if not config.calibration:
        return []
    return [config.calibration] if isinstance(config.calibration, str) else list(config.calibration)


def split_unmonitored(records: list[ImageRecord]) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(background references, held-back photos): alternate photos by path, so both halves
    cover every kind of unmonitored product the source has."""
    ordered = sorted(records, key=lambda r: r.path)
    background = [replace(r, authenticity=UNMONITORED) for r in ordered[0::2]]
    return background, ordered[1::2]


def product_descriptions(gallery: Gallery, embeddings: np.ndarray) -> dict[str, dict]:
    """Per catalogued product: its group, whether it has known fakes, and how close its genuine
    references lie to each other (mean and spread of each one's nearest other genuine one),
    pooled over the group (then everything) where it has too few references for that."""
    products = gallery.references.column("product").to_pylist()
    brands = gallery.references.column("brand").to_pylist()
    sources = gallery.references.column("source").to_pylist()
    described: dict[str, dict] = {}
    for name in gallery.catalogue_products:
        rows = np.flatnonzero((np.array(products, dtype=object) == name) & gallery.is_catalogue)
        group = next((brands[r] for r in rows if brands[r]), None) or (sources[rows[0]] or "").split("/")[0] or "all"
        genuine = rows[gallery.is_genuine[rows]]
        described[name] = {"group": group, "fakes": bool(gallery.is_fake[rows].any()),
                           "loo": _leave_one_out_similarity(embeddings[genuine])}
    for name, description in described.items():
        pools = ([description["loo"]],
                 [d["loo"] for d in described.values() if d["group"] == description["group"]],
                 [d["loo"] for d in described.values()])
        values = next(np.concatenate(p) for p in pools if sum(len(v) for v in p) >= 5 or p is pools[-1])
        description["genuine_mean"] = float(values.mean()) if len(values) else 1.0
        description["genuine_spread"] = float(max(values.std(), 1e-3)) if len(values) > 1 else 0.1
    return described


def _leave_one_out_similarity(vectors: np.ndarray) -> np.ndarray:
    if len(vectors) < 2:
        return np.zeros(0)
    similarities = vectors @ vectors.T
    np.fill_diagonal(similarities, -np.inf)
    return similarities.max(axis=1)


def held_back_matches(gallery: Gallery, reference_vectors: np.ndarray, embeddings: np.ndarray,
                      photos: list[ImageRecord]) -> tuple[HeldBack, dict[str, dict]]:
    """What matching finds for the held-back catalogued photos, each judged against its own
    product, and the catalogue's product descriptions."""
    catalogued = [i for i, r in enumerate(photos) if r.product in set(gallery.catalogue_products)]
    photos, embeddings = [photos[i] for i in catalogued], embeddings[catalogued]
    matches = match(gallery, embeddings, with_evidence=False, claimed=[r.product for r in photos])
    described = product_descriptions(gallery, reference_vectors)
    held_back = HeldBack(
        product=[r.product for r in photos], group=[described[r.product]["group"] for r in photos],
        is_fake=np.array([r.authenticity == FAKE for r in photos]), product_similarity=matches.product_similarity,
        raw=matches.raw, nearest_genuine=matches.genuine_similarity,
        nearest_catalogue=matches.nearest_catalogue, nearest_background=matches.nearest_background,
        nearest_fake=matches.fake_similarity, impostors=impostor_similarities(gallery, embeddings, photos, described),
    )
    return held_back, described


def impostor_similarities(gallery: Gallery, embeddings: np.ndarray, photos: list[ImageRecord],
                          described: dict[str, dict]) -> dict[str, np.ndarray]:
    """Per catalogued product P: how close each held-back photo of *another* product of P's
    group comes to P's nearest reference (what another model of the kind would reach)."""
    products = np.array([r.product for r in photos], dtype=object)
    groups = np.array([described[p]["group"] for p in products], dtype=object)
    found = {}
    for name, description in described.items():
        others = np.flatnonzero((groups == description["group"]) & (products != name))
        if len(others):
            sides = [gallery.search_among(embeddings[others], 1, (name, side))[0] for side in (GENUINE, FAKE)]
            found[name] = np.max([s[:, 0] if s.shape[1] else np.full(len(others), -1.0) for s in sides], axis=0).astype(np.float64)
    return found


def fit_world(gallery: Gallery, reference_vectors: np.ndarray, embeddings: np.ndarray, photos: list[ImageRecord],
              unmonitored_vectors: np.ndarray, config: IndexConfig) -> OpenWorld:
    """The open-world calibration from held-back photos (each judged against its own product)."""
    held_back, described = held_back_matches(gallery, reference_vectors, embeddings, photos)
    return _world(gallery, held_back, described, unmonitored_vectors, config)


def fit_calibrations(gallery: Gallery, reference_vectors: np.ndarray, embeddings: np.ndarray, photos: list[ImageRecord],
                     unmonitored_vectors: np.ndarray, config: IndexConfig) -> tuple[OpenWorld, HeldBackScores]:
    """`fit_world`, and the held-back photos as screening then judges them (status and score
    under that world), pooled per product: what listing thresholds are set from on each run.
    The held-back photos are matched once for both."""
    held_back, described = held_back_matches(gallery, reference_vectors, embeddings, photos)
    world = _world(gallery, held_back, described, unmonitored_vectors, config)
    verdicts = decide(world, held_back.product, held_back.nearest_catalogue, held_back.nearest_background,
                      held_back.product_similarity, held_back.raw, held_back.nearest_genuine, held_back.nearest_fake)
    params = config.open_world
    scores = fit_held_back_scores(held_back.product, {name: (d["group"], d["fakes"]) for name, d in described.items()},
                                  verdicts.status, verdicts.score, held_back.is_fake, config.target_precision,
                                  params.cold_start_false_flag_rate, params.min_per_class, params.min_photos)
    return world, scores


def _world(gallery: Gallery, held_back: HeldBack, described: dict[str, dict], unmonitored_vectors: np.ndarray,
           config: IndexConfig) -> OpenWorld:
    if len(unmonitored_vectors):
        unmonitored = match(gallery, unmonitored_vectors, with_evidence=False).nearest_catalogue
    else:
        unmonitored = np.array([-1.0])  # none held back: nothing is refused as unmonitored
    return fit_open_world(held_back, unmonitored, described, config.open_world, config.target_precision)


def index(config: IndexConfig, model_path: Path, out_dir: Path) -> Gallery:
    embedder = OnnxEmbedder(model_path)
    groups = read_groups(Path(config.groups)) if config.groups else None
    references = labelled(list(read_sources(config.references)), "references")
    background, held_unmonitored = split_unmonitored(list(read_sources(config.unmonitored)))
    gallery, reference_vectors = build_gallery(embedder, config, references + background)
    copy_similarity = config.copy_check.similarity
    specs = calibration_specs(config)
    if specs:
        photos = labelled(list(read_sources(specs)), "calibration")
        _check_disjoint(gallery, photos + held_unmonitored)
        all_embeddings, all_kept, failures = embed_records(embedder, photos, config.batch_size, config.workers, "calibration")
        _report_failures("calibration", failures)
        unmonitored_vectors, unmonitored_kept, failures = embed_records(embedder, held_unmonitored, config.batch_size,
                                                                        config.workers, "unmonitored")
        _report_failures("unmonitored", failures)
        embeddings, kept = all_embeddings, all_kept
        if groups is not None:
            embeddings, kept, copy_similarity = _new_photographs(gallery, reference_vectors, embeddings, kept, groups, config)
            unmonitored_vectors, unmonitored_kept, _ = _new_photographs(gallery, reference_vectors, unmonitored_vectors,
                                                                        unmonitored_kept, groups, config)
        if config.drop_copies:
            # the model's own nearest references as candidates too: they find copies that the
            # groups' frozen ImageNet candidates missed
            embeddings, kept = _without_copies(gallery, embeddings, kept, config, "calibration")
            unmonitored_vectors, _ = _without_copies(gallery, unmonitored_vectors, unmonitored_kept, config, "unmonitored")
        gallery.info.calibration = calibrate(gallery, embeddings, kept, config)
        world, held_back_scores = fit_calibrations(gallery, reference_vectors, embeddings, kept, unmonitored_vectors, config)
        gallery.info.open_world, gallery.info.held_back_scores = world, asdict(held_back_scores)
        if config.add_calibration_photos:
            # the new photographs (copies of references add nothing): a listing that copies one is then a copy
            first = gallery.references.num_rows
            gallery.add(embeddings, kept, source=",".join(specs), data_root=data_root())
            gallery.info.calibration_rows = [first, gallery.references.num_rows]
    gallery.set_thumbnails(catalogue_thumbnails(gallery, groups, config.workers),
                           replace(config.copy_check, similarity=copy_similarity))
    if patches_path(model_path).is_file():  # local evidence: `knockoff export` writes the patch model beside the model
        gallery.set_patches(reference_patches(gallery, PatchModel(patches_path(model_path)), config.workers))
    with writing(out_dir):
        gallery.save(out_dir)
    return gallery


def catalogue_thumbnails(gallery: Gallery, groups: dict[str, int] | None, workers: int, first_row: int = 0):
    """Copy-check thumbnails of the gallery's catalogued references from `first_row` on: one
    per photograph group whose references agree on product and side (a group whose copies
    disagree, such as two near-identical studio shots of package variants, keeps them all)."""
    rows = np.flatnonzero(gallery.is_catalogue[first_row:]) + first_row
    table = gallery.references.take(pa.array(rows, pa.int64()))
    portable = table.column("path").to_pylist()
    keys = None
    if groups is not None:
        labels = [class_name(p, a) for p, a in zip(table.column("product").to_pylist(), table.column("authenticity").to_pylist())]
        keys = [f"{key} {label}" for key, label in zip(group_keys(portable, groups), labels)]
    return reference_thumbnails([str(Path(data_root(), path)) for path in portable], portable, keys, workers)


def reference_patches(gallery: Gallery, patch_model: PatchModel, workers: int, first_row: int = 0) -> PatchBanks:
    """The gallery's patch banks with the catalogued references from `first_row` on (all of
    them into new banks when the gallery has none yet). New banks also get each product's
    objectness head, fit where its references carry labelled product boxes; added references
    extend the banks and leave the heads as they are."""
    if gallery.patches is not None and gallery.patches.model_version != patch_model.info.version:
        raise ModelMismatchError(f"the gallery's patch banks come from {gallery.patches.model_version}, "
                                 f"not {patch_model.info.version}: rebuild the gallery with `knockoff index`")
    if patch_model.info.space != gallery.info.model_version:
        raise ModelMismatchError(f"patch model {patch_model.info.version} does not belong to the gallery's model "
                                 f"{gallery.info.model_version}")
    rows = np.flatnonzero(gallery.is_catalogue[first_row:]) + first_row
    table = gallery.references.take(pa.array(rows, pa.int64()))
    keys = list(zip(table.column("product").to_pylist(), table.column("authenticity").to_pylist()))
    records = [ImageRecord(str(Path(data_root(), path))) for path in table.column("path").to_pylist()]
    fresh = gallery.patches is None
    banks = gallery.patches or stack({}, patch_model.grid, patch_model.info.version, patch_model.info.embedding_dim)
    boxed: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # product -> [(cells, inside the box)]
    rng = np.random.default_rng(0)
    done = 0
    for batch in decode_batches(records, patch_model.info.input_size, 32, workers):
        ok = np.flatnonzero(batch.ok) + done
        features = patch_model.features(batch.images)
        banks = banks.extended(features, rows[ok], [keys[i] for i in ok])
        for feature, i in zip(features, ok):
            boxes = product_boxes(records[i].path) if fresh else None
            if boxes:
                drawn = rng.choice(patch_model.grid ** 2, OBJECTNESS_CELLS, replace=False)
                inside = cells_inside(boxes, patch_model.grid)[drawn]
                boxed.setdefault(keys[i][0], []).append((feature.reshape(-1, feature.shape[-1])[drawn], inside))
        done += len(batch.records)
    for product, samples in boxed.items():
        weights = fit_objectness(np.concatenate([c for c, _ in samples]), np.concatenate([b for _, b in samples]))
        if weights is not None:
            banks.objectness[product] = weights
    return banks


def _new_photographs(gallery: Gallery, reference_vectors: np.ndarray, embeddings: np.ndarray, photos: list[ImageRecord],
                     groups: dict[str, int], config: IndexConfig) -> tuple[np.ndarray, list[ImageRecord], float]:
    """The held-back photos whose photograph no reference shows (and whose copies agree on
    their label); and the copy check's candidate similarity: the loosest cosine between a
    held-back copy and a reference of its group, less the margin."""
    reference_keys = group_keys(gallery.references.column("path").to_pylist(), groups)
    keys = group_keys([portable_path(r.path, data_root()) for r in photos], groups)
    labels = [r.known_class for r in photos]
    conflicts = conflicting_groups([*keys, *reference_keys], [*labels, *_labels(gallery)])
    copies = ~new_photographs(keys, reference_keys)
    new = ~copies & np.array([key not in conflicts for key in keys], bool)
    loosest = [float((reference_vectors[reference_keys == keys[i]] @ embeddings[i]).max()) for i in np.flatnonzero(copies)]
    dropped = [portable_path(photos[i].path, data_root()) for i in np.flatnonzero(~new)]
    gallery.info.excluded_copies = sorted({*gallery.info.excluded_copies, *dropped})
    print(f"held back: {int(new.sum())} new photographs; left out {len(dropped)} copies of a reference or of conflicting labels")
    similarity = min(loosest) - config.copy_margin if loosest else config.copy_check.similarity
    keep = np.flatnonzero(new)
    return embeddings[keep], [photos[i] for i in keep], float(similarity)


def _labels(gallery: Gallery) -> list[str | None]:
    products = gallery.references.column("product").to_pylist()
    sides = gallery.references.column("authenticity").to_pylist()
    return [class_name(p, a) if c else None for p, a, c in zip(products, sides, gallery.is_catalogue)]


@dataclass(frozen=True)
class Added:
    gallery: Gallery
    added: int
    already_present: int
    unlabelled: int
    unreadable: list[tuple[str, str]]


def add_references(model_path: Path, gallery_dir: Path, sources: list[str], product: str | None = None,
                   authenticity: str = "genuine", brand: str | None = None, batch_size: int = 32, workers: int = 2) -> Added:
    """Append references to a built gallery without retraining: confirmed fakes and genuine
    photos from a labelled manifest, or (with `product`) a folder of one product's photos.

    Photos already in the gallery (same path) are skipped, so re-adding an updated confirmed
    manifest adds only what is new. The gallery is rewritten atomically.
    """
    records = list(read_sources(sources))
    if product is not None:
        records = [replace(r, product=product, authenticity=authenticity, brand=brand or r.brand) for r in records]
    return _add_records(model_path, gallery_dir, records, ",".join(sources), None, batch_size, workers)


def add_catalogue(model_path: Path, gallery_dir: Path, catalogue: Catalogue, batch_size: int = 32, workers: int = 2) -> Added:
    """Keep the brand's catalogue with the gallery (replacing any earlier one) and add its
    official photos as genuine references marked `official` (source), each of the product the
    gallery already knows under that name, or a new product."""
    known = _gallery_products(gallery_dir)
    products = tuple(replace(entry, product=gallery_name(entry.product, known, entry.brand) or entry.product)
                     for entry in catalogue.products)
    records = [ImageRecord(photo, product=entry.product, authenticity=GENUINE, brand=entry.brand, source=OFFICIAL)
               for entry in products for photo in entry.official_photos]
    stored = replace(catalogue, products=tuple(
        replace(entry, official_photos=tuple(portable_path(p, data_root()) for p in entry.official_photos)) for entry in products))
    return _add_records(model_path, gallery_dir, records, f"catalogue {catalogue.source}", stored, batch_size, workers)


def gallery_name(product: str, known: list[str], brand: str | None = None) -> str | None:
    """The gallery's name for a catalogue's product: the same name (case and spacing aside),
    else the one known product whose words, the brand's aside, all appear in it or hold all of
    its own ("Nike Air Force 1" and "Air Force 1" are "nike air force", "Air Jordan 1" of
    brand nike is "nike jordan 1"); None: a product the gallery does not know."""
    same = [name for name in known if product_key(name) == product_key(product)]
    if same:
        return same[0]
    brand_words = set(product_key(brand).split())
    words = set(product_key(product).split()) - brand_words
    near = [name for name in known
            if (own := set(product_key(name).split()) - brand_words) and words and (own <= words or words <= own)]
    return near[0] if len(near) == 1 else None


def _gallery_products(gallery_dir: Path) -> list[str]:
    import pyarrow.parquet as pq

    from knockoff.gallery.store import read_info

    references = pq.read_table(Path(gallery_dir) / read_info(gallery_dir).files["references"], columns=["product"])
    return [p for p in set(references.column("product").to_pylist()) if p]


def _add_records(model_path: Path, gallery_dir: Path, records: list[ImageRecord], source: str, catalogue: Catalogue | None,
                 batch_size: int, workers: int) -> Added:
    embedder = OnnxEmbedder(model_path)
    labelled_records = [r for r in records if r.product and r.authenticity]
    with writing(gallery_dir):  # read, add and save as one: a concurrent `index add` waits
        gallery = Gallery.load(gallery_dir, model=embedder.info)
        present = set(gallery.references.column("path").to_pylist())
        fresh = [r for r in labelled_records if portable_path(r.path, data_root()) not in present]
        embeddings, kept, failures = embed_records(embedder, fresh, batch_size, workers, "references")
        first_new = gallery.references.num_rows
        gallery.add(embeddings, kept, source=source, data_root=data_root())
        if catalogue is not None:
            gallery.info.catalogue = _without_unreadable(catalogue, {portable_path(p, data_root()) for p, _ in failures}).to_dict()
        if gallery.thumbnails is not None:
            gallery.set_thumbnails(catalogue_thumbnails(gallery, None, workers, first_new))
        if gallery.patches is not None:
            if not patches_path(model_path).is_file():
                raise FileNotFoundError(f"the gallery keeps patch banks for local evidence, but {patches_path(model_path)} "
                                        "is missing: export the model again (`knockoff export`)")
            gallery.set_patches(reference_patches(gallery, PatchModel(patches_path(model_path)), workers, first_new))
        gallery.save(gallery_dir)
    return Added(gallery, len(kept), len(labelled_records) - len(fresh), len(records) - len(labelled_records), failures)


def _without_unreadable(catalogue: Catalogue, unreadable: set[str]) -> Catalogue:
    """The catalogue as kept: an official photo that could not be read is no reference, so no copy of it can be found."""
    return replace(catalogue, products=tuple(
        replace(entry, official_photos=tuple(p for p in entry.official_photos if p not in unreadable)) for entry in catalogue.products))


def copies_of_references(gallery: Gallery, embeddings: np.ndarray, photos: list[ImageRecord],
                         candidates: int = 5) -> list[str | None]:
    """For each photo, the reference (portable path) it is a copy of, or None. Only its
    `candidates` nearest references by embedding are checked: a copy embeds close to its
    original (a 70-90% crop at cosine 0.6 or more, and nearest in practice)."""
    from knockoff.images.copies import CopyChecker

    _, rows = gallery.search(embeddings, candidates)
    reference_paths = gallery.references.column("path").to_pylist()
    checker = CopyChecker()
    found: list[str | None] = []
    for photo, neighbours in zip(photos, rows):
        copied = (reference_paths[row] for row in neighbours[neighbours >= 0]
                  if checker.is_copy(photo.path, str(Path(data_root(), reference_paths[row]))))
        found.append(next(copied, None))
    return found


def _without_copies(gallery: Gallery, embeddings: np.ndarray, photos: list[ImageRecord], config: IndexConfig,
                    what: str) -> tuple[np.ndarray, list[ImageRecord]]:
    copies = copies_of_references(gallery, embeddings, photos, config.copy_candidates)
    keep = [i for i, copy_of in enumerate(copies) if copy_of is None]
    dropped = [portable_path(photos[i].path, data_root()) for i, copy_of in enumerate(copies) if copy_of is not None]
    gallery.info.excluded_copies = sorted({*gallery.info.excluded_copies, *dropped})
    print(f"{what}: left out {len(dropped)} of {len(photos)} held-back photos that are copies of a reference")
    return embeddings[keep], [photos[i] for i in keep]


def _check_disjoint(gallery: Gallery, photos: list[ImageRecord]) -> None:
    """A calibration photo that is also a reference finds itself at similarity 1: its score
    says nothing about unseen listings, and the threshold would be set too low."""
    references = {Path(data_root(), p).resolve() for p in gallery.references.column("path").to_pylist()}
    shared = [r.path for r in photos if Path(r.path).resolve() in references]
    if shared:
        raise ValueError(f"{len(shared)} calibration photos are also references, e.g. {shared[0]}")


def _report_failures(what: str, failures: list[tuple[str, str]]) -> None:
    for path, error in failures[:10]:
        print(f"{what}: skipped {path}: {error}")
    if len(failures) > 10:
        print(f"{what}: ... and {len(failures) - 10} more unreadable images")
