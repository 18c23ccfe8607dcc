import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps

from knockoff.gallery.copies import CopyParams, ReferenceCopies, reference_thumbnails, thumbnail_table
from knockoff.images.decode import load_rgb
from tests.helpers import SAMPLE

pytest.importorskip("cv2")

# distinct photographs of the sample (no sample photo copies another of them)
DISTINCT = [next((SAMPLE / "sneakers" / "train" / "images").glob(f"{stem}_jpg.*")) for stem in ("0004", "0006", "0073", "0098")]


def _copies(paths, params=CopyParams()) -> ReferenceCopies:
    portable = [p.name for p in paths]
    return ReferenceCopies(reference_thumbnails([str(p) for p in paths], portable), portable, params)


def test_a_cropped_mirrored_copy_of_a_reference_is_found_from_its_thumbnail_alone(tmp_path):
    photo = Image.open(DISTINCT[1])
    width, height = photo.size
    ImageOps.mirror(photo.crop((50, 30, width - 20, height - 60))).save(tmp_path / "copy.jpg", quality=75)
    pixels = np.stack([load_rgb(tmp_path / "copy.jpg", 224), load_rgb(DISTINCT[3], 224)])
    copies = _copies(DISTINCT[:3])  # the fourth photo is no reference
    rows = np.array([[0, 1, 2], [0, 1, 2]])
    similarities = np.full((2, 3), 0.9, np.float32)
    everything = np.ones((2, 3), bool)
    assert copies.copied_rows(pixels, similarities, rows, everything).tolist() == [1, -1]
    # candidates below the similarity where copies occur, or not eligible, are never verified
    assert copies.copied_rows(pixels, np.full((2, 3), 0.4, np.float32), rows, everything).tolist() == [-1, -1]
    assert copies.copied_rows(pixels, similarities, rows, np.array([[True, False, True]] * 2)).tolist() == [-1, -1]
    # and only the first `candidates` are looked at
    limited = _copies(DISTINCT[:3], CopyParams(candidates=1))
    assert limited.copied_rows(pixels, similarities, rows, everything).tolist() == [-1, -1]


def test_thumbnails_are_one_per_photograph_group_and_the_same_references_give_the_same_bytes(tmp_path):
    paths = [str(p) for p in DISTINCT]
    table = reference_thumbnails(paths, ["d.jpg", "b.jpg", "c.jpg", "a.jpg"], ["g1", "g2", "g1", "g3"])
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert [r["stand_in"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg", "c.jpg"]  # d copies c's photograph
    assert [r["thumbnail"] is not None for r in rows] == [True, True, True, False]
    assert all(len(r["thumbnail"]) < 12_000 for r in rows if r["thumbnail"])  # a few KB each
    again = reference_thumbnails(paths[::-1], ["a.jpg", "c.jpg", "b.jpg", "d.jpg"], ["g3", "g1", "g2", "g1"])
    pq.write_table(table, tmp_path / "one.parquet")
    pq.write_table(again, tmp_path / "two.parquet")
    assert table.equals(again) and (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()


def test_an_unreadable_reference_has_no_thumbnail_and_is_never_called_copied(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(DISTINCT[0].read_bytes()[:500])
    table = thumbnail_table(["broken.jpg"], ["broken.jpg"], {})
    copies = ReferenceCopies(table, ["broken.jpg"], CopyParams())
    pixels = load_rgb(DISTINCT[0], 224)[None]
    assert reference_thumbnails([str(broken)], ["broken.jpg"]).column("thumbnail").to_pylist() == [None]
    assert copies.copied_rows(pixels, np.array([[0.99]]), np.array([[0]]), np.array([[True]])).tolist() == [-1]
