from pathlib import Path

import pytest

from knockoff.data.records import FAKE, GENUINE
from knockoff.data.roboflow import listing_id_from_stem, parse_class_name, read_roboflow
from tests.helpers import SAMPLE, SHARED_DATA, write_image


@pytest.mark.parametrize(
    "name, expected",
    [("nike fake air force", ("nike air force", FAKE, "nike")),
     ("nike original jordan 1", ("nike jordan 1", GENUINE, "nike")),
     ("counterfeit rolex", ("rolex", FAKE, None)),
     ("gucci bag", ("gucci bag", None, "gucci"))],
)
def test_class_names_split_into_product_and_authenticity(name, expected):
    assert parse_class_name(name) == expected


def test_listing_id_drops_roboflow_suffix():
    assert listing_id_from_stem("0002_jpg.rf.87e75dedd5f86de9009791f51e12d3f6") == "0002"
    assert listing_id_from_stem("IMG_77") == "IMG_77"


def _export(root: Path, labels: dict[str, str]) -> Path:
    (root / "data.yaml").write_text("names: ['nike fake air force', 'nike original air force', 'nike original jordan 1']\nnc: 3\n")
    for stem, text in labels.items():
        write_image(root / "train" / "images" / f"{stem}.jpg")
        if text is not None:
            (root / "train" / "labels").mkdir(parents=True, exist_ok=True)
            (root / "train" / "labels" / f"{stem}.txt").write_text(text)
    return root


def test_photo_labels_from_boxes(tmp_path):
    root = _export(tmp_path, {
        "a": "1 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1",  # two genuine AF1 boxes
        "b": "1 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1",  # side-by-side genuine + fake: fake
        "c": "2 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1\n1 0.3 0.3 0.1 0.1",  # mostly jordan
        "d": "",  # no boxes
        "e": None,  # no label file
    })
    records = {Path(r.path).stem: r for r in read_roboflow(root, "train")}
    assert (records["a"].product, records["a"].authenticity) == ("nike air force", GENUINE)
    assert (records["b"].product, records["b"].authenticity) == ("nike air force", FAKE)
    assert (records["c"].product, records["c"].authenticity) == ("nike jordan 1", GENUINE)
    assert records["d"].authenticity is None and records["e"].product is None
    assert records["a"].source == f"{tmp_path.name}/train"


def test_out_of_range_class_is_an_error(tmp_path):
    root = _export(tmp_path, {"a": "7 0.5 0.5 0.2 0.2"})
    with pytest.raises(ValueError, match="class 7 not in data.yaml"):
        list(read_roboflow(root, "train"))


def test_bundled_sample_is_balanced():
    records = list(read_roboflow(SAMPLE / "sneakers", "valid"))
    assert len(records) == 32
    assert {(r.product, r.authenticity) for r in records} == {
        ("nike air force", FAKE), ("nike air force", GENUINE), ("nike jordan 1", FAKE), ("nike jordan 1", GENUINE)}


@pytest.mark.skipif(not (SHARED_DATA / "sneakers").is_dir(), reason="../shared/datasets not present")
def test_full_sneakers_export():
    train = list(read_roboflow(SHARED_DATA / "sneakers", "train"))
    valid = list(read_roboflow(SHARED_DATA / "sneakers", "valid"))
    assert (len(train), len(valid)) == (2703, 771)
    assert all(r.authenticity in (FAKE, GENUINE) for r in train + valid)
