from dataclasses import replace

import pytest

from knockoff.gallery.indexing import IndexConfig, index
from knockoff.gallery.store import Gallery
from tests.helpers import SAMPLE


@pytest.fixture
def sample_root(monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))


def test_index_builds_saves_and_calibrates(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(factory="HNSW8,Flat", references=("sneakers/train",), calibration="sneakers/valid")
    gallery = index(config, tiny_onnx, tmp_path / "g")
    loaded = Gallery.load(tmp_path / "g")
    assert loaded.info.version == gallery.info.version and loaded.info.count == 48
    assert loaded.info.sources == ["sneakers/train"]
    assert loaded.info.index_factory == "HNSW8,Flat"
    assert loaded.references.column("path").to_pylist()[0].startswith("sneakers/train/images/")
    calibration = loaded.info.calibration
    # the sample's own augmented copies of train photos in valid are left out, and recorded
    copies = loaded.info.excluded_copies
    assert calibration.count == 32 - len(copies) and calibration.source == "sneakers/valid"
    assert all(path.startswith("sneakers/valid/images/") for path in copies)
    assert 0.0 <= calibration.threshold and calibration.target_precision == 0.95


def test_a_calibration_photo_that_copies_a_reference_is_left_out(tiny_onnx, tmp_path, sample_root):
    pytest.importorskip("cv2")
    from PIL import Image, ImageOps

    references = sorted((SAMPLE / "sneakers" / "train" / "images").glob("*.jpg"))[:12]
    held_back = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:12]
    original = Image.open(references[0])
    copy = tmp_path / "copy.jpg"
    ImageOps.mirror(original.crop((50, 40, original.width - 30, original.height - 60))).save(copy, quality=70)
    (tmp_path / "refs.csv").write_text("path,product,label\n" + "".join(f"{p},nike air force,{'fake' if i % 2 else 'genuine'}\n"
                                                                      for i, p in enumerate(references)))
    (tmp_path / "held.csv").write_text("path,product,label\n" + "".join(f"{p},nike air force,{'fake' if i % 2 else 'genuine'}\n"
                                                                      for i, p in enumerate([*held_back, copy])))
    config = IndexConfig(references=(str(tmp_path / "refs.csv"),), calibration=str(tmp_path / "held.csv"), copy_candidates=12)
    gallery = index(config, tiny_onnx, tmp_path / "g")
    assert str(copy) in gallery.info.excluded_copies
    assert gallery.info.calibration.count == 13 - len(gallery.info.excluded_copies)
    without = index(replace(config, drop_copies=False), tiny_onnx, tmp_path / "g2")
    assert without.info.excluded_copies == [] and without.info.calibration.count == 13


def test_calibration_photos_can_join_the_gallery_after_calibrating(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/valid", add_calibration_photos=True)
    gallery = index(config, tiny_onnx, tmp_path / "g")
    kept = 32 - len(gallery.info.excluded_copies)  # copies of references stay out: they add nothing
    assert gallery.info.count == 48 + kept and gallery.info.sources == ["sneakers/train", "sneakers/valid"]
    assert gallery.info.calibration.count == kept  # fit before they joined


def test_calibrating_on_references_is_refused(tiny_onnx, tmp_path, sample_root):
    config = IndexConfig(references=("sneakers/train",), calibration="sneakers/train")
    with pytest.raises(ValueError, match="calibration photos are also references"):
        index(config, tiny_onnx, tmp_path / "g")


def test_unlabelled_references_are_skipped(tiny_onnx, tmp_path, sample_root, capsys):
    config = IndexConfig(references=("sneakers/valid", str(SAMPLE / "uploads")))
    gallery = index(config, tiny_onnx, tmp_path / "g")
    assert gallery.info.count == 32 and gallery.info.calibration is None
    assert "skipping 1 images without a genuine/fake label" in capsys.readouterr().out


def test_a_new_product_needs_only_its_genuine_photos(tiny_onnx, tmp_path, sample_root):
    from knockoff.gallery.indexing import add_references
    from knockoff.gallery.matching import match
    from tests.helpers import write_image

    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "g")
    photos = [write_image(tmp_path / "acme" / f"{i}.png", color=(20, 40 + 30 * i, 200), size=(120, 90)) for i in range(3)]
    before = Gallery.load(tmp_path / "g")
    added = add_references(tiny_onnx, tmp_path / "g", [str(tmp_path / "acme")], product="acme tote", brand="acme")
    assert (added.added, added.already_present) == (3, 0)
    after = Gallery.load(tmp_path / "g")
    assert after.info.count == 51 and after.info.version != before.info.version
    assert after.info.calibration == before.info.calibration  # the score's scale is kept
    from knockoff.images.decode import load_rgb
    from knockoff.runtime.embedding import OnnxEmbedder

    embedder = OnnxEmbedder(tiny_onnx)
    result = match(after, embedder.embed(load_rgb(photos[1], 160)[None]))
    assert result.product == ["acme tote"] and result.nearest_genuine[0].as_py()[0]["similarity"] > 0.999
    again = add_references(tiny_onnx, tmp_path / "g", [str(tmp_path / "acme")], product="acme tote")
    assert (again.added, again.already_present) == (0, 3)


def test_unlabelled_photos_are_not_added(tiny_onnx, tmp_path, sample_root):
    from knockoff.gallery.indexing import add_references

    index(IndexConfig(references=("sneakers/train",)), tiny_onnx, tmp_path / "g")
    added = add_references(tiny_onnx, tmp_path / "g", [str(SAMPLE / "uploads")])
    assert (added.added, added.unlabelled) == (0, 1)


@pytest.mark.slow
def test_two_index_adds_at_once_lose_no_reference_in_any_round(tiny_onnx, tiny_gallery, tmp_path):
    """Two `knockoff index add` processes at the same moment, three rounds: the second waits
    for the first's lock, so every reference of both lands and the gallery always loads."""
    import shutil
    import subprocess
    import sys

    gallery = tmp_path / "gallery"
    shutil.copytree(tiny_gallery, gallery)
    photos = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))
    start = Gallery.load(gallery).info.count
    code = ("import sys; from pathlib import Path; from knockoff.gallery.indexing import add_references; "
            "add_references(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:], product=Path(sys.argv[3]).name)")
    added = 0
    for round_ in range(3):
        folders = []
        for side in ("a", "b"):
            folder = tmp_path / f"round{round_}" / f"product-{side}"
            folder.mkdir(parents=True)
            for photo in photos[round_ * 8 + (0 if side == "a" else 4): round_ * 8 + (4 if side == "a" else 8)]:
                shutil.copy(photo, folder / photo.name)
            folders.append(folder)
        runs = [subprocess.Popen([sys.executable, "-c", code, str(tiny_onnx), str(gallery), str(folder)]) for folder in folders]
        assert [run.wait(timeout=300) for run in runs] == [0, 0]
        added += 8
        loaded = Gallery.load(gallery)
        assert loaded.info.count == start + added and loaded.index.ntotal == start + added
    assert {p for p in loaded.references.column("product").to_pylist()} >= {"product-a", "product-b"}


def test_the_gallery_keeps_patch_banks_with_objectness_and_index_add_extends_them(tiny_onnx, tmp_path, sample_root):
    """Beside tiny.onnx lies its patch model: the index keeps each product's references' patches
    (genuine and fake), and the sample's labelled boxes teach each product an objectness head."""
    from knockoff.gallery.indexing import add_references
    from tests.helpers import write_image

    built = index(IndexConfig(references=("sneakers/train",)), tiny_onnx, tmp_path / "g")
    banks = Gallery.load(tmp_path / "g").patches
    assert banks is not None and banks.digest() == built.patches.digest() and banks.grid == 10
    products = {product for product, _ in banks.keys}
    assert {side for _, side in banks.keys} == {"genuine", "fake"} and set(banks.objectness) == products
    catalogue = set(map(int, (built.is_catalogue.nonzero()[0])))
    assert set(map(int, banks.rows)) == catalogue  # every catalogued reference has patches
    for i in range(2):
        write_image(tmp_path / "acme" / f"{i}.png", color=(20, 40 + 30 * i, 200), size=(120, 90))
    add_references(tiny_onnx, tmp_path / "g", [str(tmp_path / "acme")], product="acme tote")
    grown = Gallery.load(tmp_path / "g").patches
    assert ("acme tote", "genuine") in grown.keys and len(grown.vectors) > len(banks.vectors)
    assert set(map(int, grown.rows)) == catalogue | {48, 49} and grown.objectness.keys() == banks.objectness.keys()


def test_a_catalogue_adds_its_official_photos_and_is_kept_with_the_gallery(tiny_onnx, tmp_path, sample_root):
    import shutil

    from knockoff.data.catalogue import Catalogue, read_catalogue
    from knockoff.data.records import OFFICIAL
    from knockoff.gallery.indexing import add_catalogue

    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "g")
    before = Gallery.load(tmp_path / "g")
    official = tmp_path / "brand"
    official.mkdir()
    valid = sorted((SAMPLE / "sneakers/valid/images").glob("*.jpg"))
    for number, photo in enumerate(valid[:2]):
        shutil.copy(photo, official / f"af1-{number}.jpg")
    (official / "broken.jpg").write_bytes(b"not a photo")
    (tmp_path / "catalogue.csv").write_text(
        "product,brand,retail_price,currency,official_photos,authorised_sellers\n"
        "Nike Air Force,nike,110,USD,brand/af1-0.jpg;brand/af1-1.jpg;brand/broken.jpg,dealer\n")
    added = add_catalogue(tiny_onnx, tmp_path / "g", read_catalogue(tmp_path / "catalogue.csv"))
    assert added.added == 2 and len(added.unreadable) == 1
    after = Gallery.load(tmp_path / "g")
    assert after.info.version != before.info.version and after.info.count == before.info.count + 2
    kept = Catalogue.from_dict(after.info.catalogue)
    entry = kept.find("nike air force")
    assert entry.product == "nike air force"  # the gallery's spelling of the product
    assert entry.official_photos == tuple(str(official / f"af1-{n}.jpg") for n in range(2))  # the unreadable one left out
    rows = after.references.slice(before.info.count).to_pylist()
    assert {(r["product"], r["authenticity"], r["source"]) for r in rows} == {("nike air force", "genuine", OFFICIAL)}
    assert after.thumbnails.num_rows > before.thumbnails.num_rows  # the copy check can find copies of them


def test_a_catalogue_product_takes_the_gallery_name_it_plainly_means():
    from knockoff.gallery.indexing import gallery_name

    known = ["nike air force", "nike jordan 1"]
    assert gallery_name("NIKE  Air Force", known) == "nike air force"
    assert gallery_name("Nike Air Force 1", known) == "nike air force"  # holds all of its words
    assert gallery_name("Jordan 1", known) == "nike jordan 1"  # all of its words are the gallery's
    assert gallery_name("Nike Dunk Low", known) is None and gallery_name("nike", known) is None  # none, or not one
    assert gallery_name("Air Jordan 1", known, brand="Nike") == "nike jordan 1"  # the brand's words aside
    assert gallery_name("Air Force 1 '07", known, brand="nike") == "nike air force"
    assert gallery_name("Air Max 90", known, brand="nike") is None
