"""knockoff.data: one spec, the right reader."""

import pytest

from knockoff.data import read_source, resolve_spec
from tests.helpers import SAMPLE, write_image


def test_specs_resolve_under_the_data_root(data_root):
    write_image(data_root / "shop" / "a.jpg")
    assert resolve_spec("shop") == data_root / "shop"
    assert [r.listing_id for r in read_source("shop")] == ["a"]


def test_existing_paths_win_over_the_data_root(data_root, tmp_path):
    write_image(tmp_path / "shop" / "a.jpg")
    assert resolve_spec(str(tmp_path / "shop")) == tmp_path / "shop"


def test_unknown_spec_explains_the_data_root(data_root):
    with pytest.raises(FileNotFoundError, match="KNOCKOFF_DATA"):
        list(read_source("nowhere/train"))


def test_dispatch_to_each_reader(data_root):
    split = list(read_source(str(SAMPLE / "sneakers" / "valid")))
    whole = list(read_source(str(SAMPLE / "sneakers")))
    manifest = list(read_source(str(SAMPLE / "listings.csv")))
    assert len(split) == 32 and len(whole) == 80
    assert split[0].authenticity is not None and split[0].source == "sneakers/valid"
    assert len(manifest) == 33 and manifest[-1].listing_id == "L2000"
    single = list(read_source(str(SAMPLE / "uploads" / "truncated-upload.jpg")))
    assert [r.listing_id for r in single] == ["truncated-upload"]
