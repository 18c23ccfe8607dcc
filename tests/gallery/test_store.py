"""Real FAISS on synthetic clustered embeddings, checked against exact numpy search."""

import json

import numpy as np
import pytest

from knockoff.data.records import FAKE, GENUINE, ImageRecord
from knockoff.gallery.store import Gallery, ModelMismatchError, read_info
from knockoff.runtime.embedding import ModelInfo

DIM = 32


def _info(version="m1"):
    return ModelInfo("test", "finetuned", version, 64, DIM, (0.5,) * 3, (0.5,) * 3)


def clustered(n, clusters=50, seed=0, spread=0.25):
    """Unit vectors around shared cluster centres (like embeddings of products); `seed`
    draws different points around the same centres."""
    centres = np.random.default_rng(1234).normal(size=(clusters, DIM))
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, DIM))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def _records(n):
    return [ImageRecord(f"/refs/{i}.jpg", str(i), f"product {i % 3}", FAKE if i % 2 else GENUINE) for i in range(n)]


def _recall_at_10(gallery, vectors, queries):
    _, found = gallery.search(queries, 10)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    return np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])


def test_flat_index_is_exact():
    vectors, queries = clustered(2000), clustered(50, seed=1)
    gallery = Gallery.build(vectors, _records(2000), _info())
    similarities, rows = gallery.search(queries, 5)
    exact = queries @ vectors.T
    np.testing.assert_array_equal(rows, np.argsort(-exact, axis=1)[:, :5])
    np.testing.assert_allclose(similarities, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-5)


@pytest.mark.parametrize("factory, parameters, minimum", [("IVF32,Flat", "nprobe=8", 0.95), ("HNSW16,Flat", "efSearch=128", 0.95)])
def test_approximate_indexes_reach_their_recall(factory, parameters, minimum):
    vectors, queries = clustered(4000), clustered(100, seed=1)
    gallery = Gallery.build(vectors, _records(4000), _info(), factory, parameters)
    assert _recall_at_10(gallery, vectors, queries) >= minimum


def test_ivf_probing_every_list_is_exact():
    vectors, queries = clustered(4000), clustered(100, seed=1)
    one = Gallery.build(vectors, _records(4000), _info(), "IVF32,Flat", "nprobe=1")
    every = Gallery.build(vectors, _records(4000), _info(), "IVF32,Flat", "nprobe=32")
    assert _recall_at_10(one, vectors, queries) < _recall_at_10(every, vectors, queries) == 1.0


@pytest.mark.parametrize("factory, parameters", [("Flat", ""), ("IVF32,Flat", "nprobe=32"), ("HNSW16,Flat", "efSearch=256"), ("PCA16,IVF8,Flat", "nprobe=8")])
def test_search_side_is_exact_search_among_that_side(factory, parameters):
    vectors, queries = clustered(2000), clustered(20, seed=1)
    gallery = Gallery.build(vectors, _records(2000), _info(), factory, parameters)
    fakes = np.flatnonzero(gallery.is_fake)
    similarities, rows = gallery.search_side(queries, 5, FAKE)
    assert gallery.is_fake[rows].all()
    if not factory.startswith("PCA"):  # PCA changes the geometry; the rows still obey the side
        exact = fakes[np.argsort(-(queries @ vectors[fakes].T), axis=1)[:, :5]]
        assert (rows == exact).mean() > 0.95


def test_search_side_on_a_gallery_without_that_side():
    records = [ImageRecord(f"{i}.jpg", authenticity=GENUINE) for i in range(5)]
    gallery = Gallery.build(clustered(5), records, _info())
    similarities, rows = gallery.search_side(clustered(2, seed=3), 3, FAKE)
    assert rows.shape == (2, 0)


def test_save_load_round_trip(tmp_path):
    vectors = clustered(100)
    gallery = Gallery.build(vectors, _records(100), _info(), "HNSW8,Flat", "efSearch=32")
    gallery.save(tmp_path / "g")
    loaded = Gallery.load(tmp_path / "g", model=_info())
    assert loaded.info == gallery.info and loaded.references.equals(gallery.references)
    np.testing.assert_array_equal(loaded.search(vectors[:5], 3)[1], gallery.search(vectors[:5], 3)[1])
    assert loaded.index.hnsw.efSearch == 32
    assert read_info(tmp_path / "g").version == gallery.info.version
    assert json.loads((tmp_path / "g" / "gallery.json").read_text())["model_version"] == "m1"


def test_saving_while_loading_never_mixes_versions(tmp_path):
    import threading

    small = Gallery.build(clustered(10), _records(10), _info())
    large = Gallery.build(clustered(25), _records(25), _info())
    small.save(tmp_path / "g")
    done = threading.Event()

    def keep_saving():
        for i in range(40):
            (large if i % 2 else small).save(tmp_path / "g")
        done.set()

    writer = threading.Thread(target=keep_saving)
    writer.start()
    loads = 0
    while not done.is_set() or loads == 0:
        try:
            loaded = Gallery.load(tmp_path / "g")
        except (FileNotFoundError, RuntimeError):  # an old version's files removed under us: retry
            continue
        assert (loaded.info.version, loaded.index.ntotal, loaded.references.num_rows) in {
            (small.info.version, 10, 10), (large.info.version, 25, 25)}
        loads += 1
    writer.join()
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == sorted(["gallery.json", *Gallery.load(tmp_path / "g").info.files.values()])


def test_loading_with_another_model_is_a_clear_error(tmp_path):
    Gallery.build(clustered(10), _records(10), _info("m1")).save(tmp_path / "g")
    with pytest.raises(ModelMismatchError, match="built with model m1, not m2"):
        Gallery.load(tmp_path / "g", model=_info("m2"))


def test_version_changes_with_references_and_calibration():
    first = Gallery.build(clustered(10), _records(10), _info())
    second = Gallery.build(clustered(11), _records(11), _info())
    assert first.info.version != second.info.version
    before = first.info.version
    from knockoff.scoring import Calibration

    first.info.calibration = Calibration(1.0, 0.0, 0.5, 0.95, 0.96, 0.8, 10)
    first.refresh_version()
    assert first.info.version != before


def test_adding_references_extends_search_lookups_and_version():
    vectors = clustered(30)
    gallery = Gallery.build(vectors[:20], _records(20), _info())
    before = gallery.info.version
    new = [ImageRecord(f"/new/{i}.jpg", f"N{i}", "brand-new product", FAKE) for i in range(10)]
    gallery.add(vectors[20:], new, source="confirmed")
    _, rows = gallery.search(vectors[25:26], 1)
    assert rows[0, 0] == 25 and gallery.reference_rows(np.array([25]))[25]["listing_id"] == "N5"
    assert gallery.is_fake[25] and "brand-new product" in gallery.product_names
    assert gallery.info.count == 30 and gallery.info.sources[-1] == "confirmed" and gallery.info.version != before


def test_reference_paths_under_the_data_root_are_stored_relative(tmp_path):
    records = [ImageRecord(str(tmp_path / "sneakers" / "a.jpg"), authenticity=GENUINE), ImageRecord("/elsewhere/b.jpg", authenticity=FAKE)]
    gallery = Gallery.build(clustered(2), records, _info(), data_root=tmp_path)
    assert gallery.references.column("path").to_pylist() == ["sneakers/a.jpg", "/elsewhere/b.jpg"]


def test_fewer_references_than_asked_for():
    gallery = Gallery.build(clustered(3), _records(3), _info())
    similarities, rows = gallery.search(clustered(2, seed=5), 10)
    assert rows.shape == (2, 3)


def test_ivf_with_too_few_references_to_learn_its_lists_is_refused():
    with pytest.raises(ValueError, match="needs at least 1248 references"):
        Gallery.build(clustered(1000), _records(1000), _info(), "IVF32,Flat", "nprobe=8")
    Gallery.build(clustered(1248), _records(1248), _info(), "IVF32,Flat", "nprobe=8")  # enough


@pytest.mark.parametrize("part, damage", [("index", "truncated"), ("index", "garbage"), ("index", "missing"),
                                          ("references", "garbage"), ("thumbnails", "truncated")])
def test_a_damaged_gallery_file_is_one_clear_error_naming_it(tiny_gallery, tmp_path, part, damage):
    import shutil

    from knockoff.gallery.store import read_info

    copy = tmp_path / "gallery"
    shutil.copytree(tiny_gallery, copy)
    target = copy / read_info(copy).files[part]
    data = target.read_bytes()
    if damage == "missing":
        target.unlink()
    else:
        target.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\x00garbage" * 64)
    with pytest.raises((ValueError, FileNotFoundError), match=rf"{target.name} (is damaged|is missing).*knockoff index"):
        Gallery.load(copy)
