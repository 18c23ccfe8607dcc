import csv
import json

import pyarrow.parquet as pq
import pytest

from knockoff.screening.results import RESULT_SCHEMA, ResultWriter

ROW = dict.fromkeys(RESULT_SCHEMA.names)
ROW.update(listing_id="L1", path="a.jpg", score=0.9, flagged=True,
           neighbors=[{"row": 1, "similarity": 0.8, "path": "r.jpg", "listing_id": "R", "product": "p", "authenticity": "fake", "source": "s"}])
FAILED = {**dict.fromkeys(RESULT_SCHEMA.names), "listing_id": "L2", "path": "b.jpg", "error": "cannot decode b.jpg"}


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_each_format_holds_every_row(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    writer = ResultWriter(out, metadata={"model_version": "m"})
    writer.write([ROW])
    writer.write([FAILED])
    assert not out.exists()  # published only on close
    writer.close()
    if suffix == ".parquet":
        rows = pq.read_table(out).to_pylist()
        assert pq.read_schema(out).metadata[b"knockoff.model_version"] == b"m"
        assert rows[0]["neighbors"][0]["authenticity"] == "fake"
    elif suffix == ".csv":
        rows = list(csv.DictReader(open(out)))
        assert json.loads(rows[0]["neighbors"])[0]["listing_id"] == "R"
    else:
        rows = [json.loads(line) for line in open(out)]
    assert [r["listing_id"] for r in rows] == ["L1", "L2"]
    assert rows[1]["error"] == "cannot decode b.jpg"
    assert writer.rows == 2


def test_abort_leaves_no_file(tmp_path):
    writer = ResultWriter(tmp_path / "r.parquet")
    writer.write([ROW])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        ResultWriter(tmp_path / "r.xlsx")
