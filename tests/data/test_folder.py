from knockoff.data.folder import read_folder, read_glob
from knockoff.data.records import FAKE, GENUINE
from tests.helpers import write_image


def test_plain_tree_is_unlabelled_and_sorted(tmp_path):
    for name in ["b/2.jpg", "a/1.png", "a/notes.txt", "c.webp", ".hidden.jpg"]:
        path = tmp_path / name
        write_image(path) if not name.endswith(".txt") else path.write_text("x")
    records = list(read_folder(tmp_path))
    assert [r.listing_id for r in records] == ["c", "a/1", "b/2"]
    assert all(r.product is None and r.authenticity is None for r in records)


def test_product_authenticity_layout_is_labelled(tmp_path):
    write_image(tmp_path / "nike jordan 1" / "original" / "x.jpg")
    write_image(tmp_path / "nike jordan 1" / "fake" / "y.jpg")
    records = {r.listing_id: r for r in read_folder(tmp_path)}
    assert (records["nike jordan 1/original/x"].product, records["nike jordan 1/original/x"].authenticity) == ("nike jordan 1", GENUINE)
    assert records["nike jordan 1/fake/y"].authenticity == FAKE


def test_glob(tmp_path):
    write_image(tmp_path / "x" / "a.jpg")
    write_image(tmp_path / "y" / "b.jpg")
    (tmp_path / "y" / "c.txt").write_text("x")
    assert [r.listing_id for r in read_glob(str(tmp_path / "**" / "*.*"))] == ["a", "b"]
