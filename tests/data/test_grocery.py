import pytest

from knockoff.data.grocery import read_grocery
from knockoff.data.records import GENUINE
from tests.helpers import SHARED_DATA, write_image


def _dataset(root):
    (root / "classes.csv").write_text(
        "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str),Product Description Path (str)\n"
        "Oat-Milk,0,Milk,0,/iconic/Milk/Oat-Milk_Iconic.jpg,/iconic/Milk/Oat-Milk.txt\n"
        "Apple-Juice,1,Juice,1,/iconic/Juice/Apple-Juice_Iconic.jpg,/iconic/Juice/Apple-Juice.txt\n"
    )
    (root / "val.txt").write_text("val/Milk/Oat-Milk_001.jpg, 0, 0\nval/Juice/Apple-Juice_001.jpg, 1, 1\n")
    for path in ["iconic/Milk/Oat-Milk_Iconic.jpg", "iconic/Juice/Apple-Juice_Iconic.jpg",
                 "val/Milk/Oat-Milk_001.jpg", "val/Juice/Apple-Juice_001.jpg"]:
        write_image(root / path)
    return root


def test_list_file_split(tmp_path):
    records = list(read_grocery(_dataset(tmp_path), "val"))
    assert [(r.product, r.authenticity, r.listing_id) for r in records] == [
        ("Oat-Milk", GENUINE, "Oat-Milk_001"), ("Apple-Juice", GENUINE, "Apple-Juice_001")]
    assert all((tmp_path / r.path).exists() for r in records)


def test_iconic_split_gives_one_reference_per_product(tmp_path):
    records = list(read_grocery(_dataset(tmp_path), "iconic"))
    assert [r.product for r in records] == ["Oat-Milk", "Apple-Juice"]
    assert all(r.path.endswith("_Iconic.jpg") for r in records)


def test_unknown_class_id_is_an_error(tmp_path):
    root = _dataset(tmp_path)
    (root / "val.txt").write_text("val/x.jpg, 9, 0\n")
    with pytest.raises(ValueError, match="class 9"):
        list(read_grocery(root, "val"))


@pytest.mark.skipif(not (SHARED_DATA / "grocery-packages").is_dir(), reason="../shared/datasets not present")
def test_full_grocery_packages():
    root = SHARED_DATA / "grocery-packages"
    iconic = list(read_grocery(root, "iconic"))
    val = list(read_grocery(root, "val"))
    assert len(val) == 100 and len(iconic) == len({r.product for r in iconic})
    assert {r.product for r in val} <= {r.product for r in iconic}
