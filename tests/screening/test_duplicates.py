import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw, ImageOps

from knockoff.images.copies import features, grey_thumbnail, union_groups, verify
from knockoff.listings import write_listings
from knockoff.screening.duplicates import DuplicateOptions, candidate_pairs
from knockoff.screening.screen import ScreenOptions, screen
from tests.helpers import REPO, SHARED_DATA

MODEL, GALLERY = REPO / "models/knockoff.onnx", REPO / "models/gallery"


def test_groups_are_named_by_their_first_row_and_photos_seen_once_have_none():
    groups = union_groups(8, [(5, 2), (2, 7), (1, 3)])
    assert groups.tolist() == [-1, 1, 2, 1, -1, 2, -1, 2]


def test_candidate_pairs_equal_exact_search_on_synthetic_near_copies():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 64)).astype(np.float32)
    originals = rng.choice(3000, 150, replace=False)
    copies = base[originals] + rng.normal(scale=0.15, size=(150, 64)).astype(np.float32)  # cosine ~0.99
    embeddings = np.concatenate([base, copies]).astype(np.float16)
    present = np.ones(len(embeddings), bool)
    present[7] = False  # a photo that failed has no embedding and joins nothing
    options = DuplicateOptions(similarity=0.8, neighbours=3, nprobe=10_000)  # every list: exact
    found = set(candidate_pairs(embeddings, present, options))

    unit = embeddings.astype(np.float32) / np.linalg.norm(embeddings.astype(np.float32), axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -1)
    similarity[7, :] = similarity[:, 7] = -1
    truth = {(min(i, j), max(i, j)) for i, j in zip(*np.nonzero(similarity >= 0.8))}
    assert found == truth and len(truth) >= 145  # 150 pairs, less any original that failed


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _captioned(image: Image.Image) -> Image.Image:
    image = image.convert("RGB").copy()
    ImageDraw.Draw(image).rectangle((0, image.height - 60, image.width, image.height), fill=(255, 0, 0))
    return image


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sneakers").is_dir(), reason="../shared/datasets not present")
def test_screening_groups_a_sellers_edited_copies_and_names_the_reference_they_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SHARED_DATA))
    reference = sorted((SHARED_DATA / "sneakers/train/images").glob("*.jpg"))[40]
    # a seller's own photo (no copy of any reference: the gallery holds sneakers `valid` too, once
    # calibrated), and two photos of one package from one shoot
    photo = sorted((SHARED_DATA / "grocery-produce/val").rglob("*.jpg"))[0]
    shot, other = sorted((SHARED_DATA / "grocery-packages/val/Packages").glob("*/*/*.jpg"))[:2]
    assert shot.parent == other.parent
    stolen, own = Image.open(reference), Image.open(photo)
    width, height = stolen.size
    files = {
        "stolen-crop.jpg": _jpeg(stolen.crop((40, 30, width - 50, height - 20))),
        "stolen-mirrored-captioned.jpg": _jpeg(_captioned(ImageOps.mirror(stolen))),
        "own.jpg": photo.read_bytes(),
        "own-reencoded-halved.jpg": _jpeg(own.resize((own.width // 2, own.height // 2)), quality=40),
        "shoot-1.jpg": shot.read_bytes(),
        "same-shoot.jpg": other.read_bytes(),
        "broken.jpg": photo.read_bytes()[:1500],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    listings = {"stolen-crop.jpg": "L1", "stolen-mirrored-captioned.jpg": "L2", "own.jpg": "L3",
                "own-reencoded-halved.jpg": "L4", "same-shoot.jpg": "L5", "broken.jpg": "L6", "shoot-1.jpg": "L7"}
    manifest = tmp_path / "crawl.csv"
    manifest.write_text("path,listing_id,seller_id\n" + "".join(
        f"{tmp_path / name},{listing},S{listing[-1]}\n" for name, listing in listings.items()))

    # The gallery as calibrated: the shipped one also holds grocery `val`'s photos (added after
    # calibrating on them), the very same-shoot photos this test needs as strangers.
    from knockoff.gallery.store import Gallery

    Gallery.load(GALLERY).without_calibration_photos().save(tmp_path / "gallery")
    screen([str(manifest)], tmp_path / "results.parquet", MODEL, tmp_path / "gallery",
           ScreenOptions(batch_size=4, duplicates=DuplicateOptions()))
    rows = {Path(r["path"]).name: r for r in pq.read_table(tmp_path / "results.parquet").to_pylist()}
    # The export holds augmented copies of one photo among the references too: either is right.
    original = features(grey_thumbnail(reference.read_bytes()))
    for name in ("stolen-crop.jpg", "stolen-mirrored-captioned.jpg"):
        named = SHARED_DATA / rows[name]["reference_copy"]
        assert named == reference or verify(original, features(grey_thumbnail(named.read_bytes()))).copy
    assert rows["stolen-crop.jpg"]["duplicate_group"] == rows["stolen-mirrored-captioned.jpg"]["duplicate_group"] == 0
    assert rows["own.jpg"]["duplicate_group"] == rows["own-reencoded-halved.jpg"]["duplicate_group"] == 2
    assert rows["own.jpg"]["reference_copy"] is None
    for name in ("shoot-1.jpg", "same-shoot.jpg"):
        assert rows[name]["duplicate_group"] is None and rows[name]["reference_copy"] is None
    assert rows["broken.jpg"]["error"] and rows["broken.jpg"]["duplicate_group"] is None
    assert "embedding" not in rows["own.jpg"]

    write_listings(tmp_path / "results.parquet", tmp_path / "listings.parquet")
    verdicts = {r["listing_id"]: r for r in pq.read_table(tmp_path / "listings.parquet").to_pylist()}
    assert [verdicts[f"L{n}"]["reused_photos"] for n in range(1, 8)] == [1, 1, 1, 1, 0, 0, 0]
    assert [verdicts[f"L{n}"]["reference_copies"] for n in range(1, 8)] == [1, 1, 0, 0, 0, 0, 0]
