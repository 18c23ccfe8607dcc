import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from knockoff.data.manifest import ManifestError, read_manifest
from knockoff.data.records import FAKE, GENUINE
from tests.helpers import write_image

ROWS = [
    {"path": "photos/a.jpg", "listing_id": "L1", "product": "nike jordan 1", "label": "original", "brand": "nike"},
    {"path": "/abs/b.jpg", "listing_id": "L2", "product": None, "label": "counterfeit", "brand": None},
    {"path": "c.jpg", "listing_id": 3, "product": "", "label": None, "brand": None},
]


def _write(path, rows):
    if path.suffix == ".csv":
        header = list(rows[0])
        lines = [",".join(header)] + [",".join("" if r[h] is None else str(r[h]) for h in header) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist([{**r, "listing_id": str(r["listing_id"])} for r in rows]), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_reads_every_format_alike(tmp_path, suffix):
    records = list(read_manifest(_write(tmp_path / f"m{suffix}", ROWS)))
    assert [r.path for r in records] == [str(tmp_path / "photos/a.jpg"), "/abs/b.jpg", str(tmp_path / "c.jpg")]
    assert [r.authenticity for r in records] == [GENUINE, FAKE, None]
    assert [r.listing_id for r in records] == ["L1", "L2", "3"]
    assert records[0].product == "nike jordan 1" and records[2].product is None
    assert records[0].brand == "nike"


def test_urls_are_kept_as_given(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"url": "https://cdn.example.com/x.jpg", "authenticity": 1}) + "\n")
    (record,) = read_manifest(manifest)
    assert record.path == "https://cdn.example.com/x.jpg" and record.authenticity == FAKE


def test_missing_path_column_is_an_error(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("image,label\na.jpg,fake\n")
    with pytest.raises(ManifestError, match="needs a 'path' or 'url' column"):
        list(read_manifest(manifest))


def test_bad_label_names_the_row(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.jpg,fake\nb.jpg,probably\n")
    with pytest.raises(ManifestError, match="line 3"):
        list(read_manifest(manifest))


def test_bad_json_line_names_the_line(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"path": "a.jpg"}\n{oops\n')
    with pytest.raises(ManifestError, match="line 2"):
        list(read_manifest(manifest))


def test_manifest_and_photos_in_object_storage(tmp_path, monkeypatch):
    """s3:// manifests resolve relative paths under their prefix; photos read through pyarrow.fs.

    No object store is reachable here, so pyarrow's S3 filesystem is swapped for its local
    one rooted at a folder that plays the bucket; everything above pyarrow.fs is real.
    """
    from pyarrow import fs

    from knockoff.data import read_source
    from knockoff.images.decode import load_rgb

    bucket = tmp_path / "bucket"
    write_image(bucket / "crawl" / "images" / "a.jpg")
    pq.write_table(pa.table({"path": ["images/a.jpg"], "listing_id": ["A1"]}), _mkparent(bucket / "crawl" / "m.parquet"))

    class BucketOnDisk:
        @staticmethod
        def from_uri(uri: str):
            assert uri.startswith("s3://bucket/")
            return fs.LocalFileSystem(), str(bucket / uri.removeprefix("s3://bucket/"))

    monkeypatch.setattr(fs, "FileSystem", BucketOnDisk)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ManifestError, match="no s3:// store is configured here"):  # at once, never a region lookup
        list(read_source("s3://bucket/crawl/m.parquet"))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    [record] = list(read_source("s3://bucket/crawl/m.parquet"))
    assert record.path == "s3://bucket/crawl/images/a.jpg" and record.listing_id == "A1"
    assert load_rgb(record.path, 32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="give a manifest"):
        list(read_source("s3://bucket/crawl/images"))


def _mkparent(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_an_unclosed_quote_is_caught_with_the_lines_it_swallowed(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('listing_id,path\nA,a.jpg\nB,"b.jpg\nC,c.jpg\nD,d.jpg\n')
    with pytest.raises(ManifestError, match=r"lines 3-\d+: field 'path' runs over \d+ lines: an unclosed quote"):
        list(read_manifest(manifest))
    records = list(read_manifest(manifest, bad_rows="record"))
    assert [r.listing_id for r in records] == ["A", "B"]  # C and D were swallowed into B's path...
    assert records[0].error is None and "unclosed quote" in records[1].error  # ...and that is reported


@pytest.mark.parametrize("name, text, bad", [
    ("m.jsonl", '{"path": "a.jpg"}\n{"path": "b.jpg", oops\n{"path": "c.jpg"}\n', "line 2: not a JSON object"),
    ("m.jsonl", '{"path": "a.jpg"}\n[1, 2]\n{"path": "c.jpg"}\n', "line 2: not a JSON object"),
    ("m.csv", "path,label\na.jpg,fake\nb.jpg,maybe\nc.jpg,genuine\n", "line 3: authenticity label 'maybe'"),
    ("m.csv", "path,label\na.jpg,fake\nb.jpg,fake,extra\nc.jpg,genuine\n", "line 3: 1 more fields than the header has"),
])
def test_a_bad_line_is_one_record_carrying_its_error_and_the_rest_is_read(tmp_path, name, text, bad):
    manifest = tmp_path / name
    manifest.write_text(text)
    records = list(read_manifest(manifest, bad_rows="record"))
    assert len(records) == 3 and records[0].error is None and records[2].error is None
    assert bad in records[1].error and str(manifest) in records[1].error
    with pytest.raises(ManifestError, match=bad.split(":")[0]):
        list(read_manifest(manifest))


def test_listing_fields_travel_with_each_photo_and_a_bad_price_is_its_rows_error(tmp_path):
    manifest = tmp_path / "crawl.csv"
    manifest.write_text(
        "listing_id,seller_id,marketplace,listing_url,title,price,currency,product,path\n"
        "L1,S9,shopx,https://shopx.example/l/1,AF1 white,\"1,299.50\",USD,nike air force,a.jpg\n"
        "L1,S9,shopx,https://shopx.example/l/1,AF1 white,$25,USD,nike air force,b.jpg\n"
        "L2,S9,shopx,https://shopx.example/l/2,J1,call me,USD,nike jordan 1,c.jpg\n")
    first, second, bad = read_manifest(manifest, bad_rows="record")
    assert (first.listing_id, first.seller_id, first.marketplace, first.listing_url, first.title, first.price,
            first.currency, first.product) == ("L1", "S9", "shopx", "https://shopx.example/l/1", "AF1 white", 1299.5,
                                               "USD", "nike air force")
    assert second.price == 25.0 and second.path.endswith("b.jpg")
    assert bad.error and "price 'call me' is not a number" in bad.error and bad.listing_id == "L2"


def test_a_quoted_field_may_hold_line_breaks_and_commas(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text('listing_id,path,seller_id,title\n'
                        'A,a.jpg,S1,"Nike AF1 white\nsize 42, worn twice\n""like new"""\n'
                        'B,b.jpg,S2,plain\n')
    first, second = read_manifest(manifest)
    assert first.error is None and first.seller_id == "S1" and first.title == 'Nike AF1 white\nsize 42, worn twice\n"like new"'
    assert second.listing_id == "B" and second.error is None
