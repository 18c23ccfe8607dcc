import pyarrow.parquet as pq
import pytest

from knockoff.data.records import ImageRecord
from knockoff.screening import parts
from knockoff.screening.parts import PartWriter, ResumeError, parts_dir


def _rows(start: int, count: int) -> list[dict]:
    return [{"path": f"p{i}.jpg", "listing_id": str(i), "score": i / 100, "flagged": i % 3 == 0,
             "error": "broken" if i % 7 == 0 else None} for i in range(start, start + count)]


def test_parts_commit_whole_and_merge_in_order(tmp_path):
    out = tmp_path / "r.parquet"
    writer = PartWriter(out, {"inputs": ["a"]}, rows_per_part=10, metadata={"model_version": "m1"})
    for start in range(0, 25, 5):
        writer.write(_rows(start, 5))
    assert len(list(parts_dir(out).glob("part-*.parquet"))) == 2  # rows 0-9, 10-19; 20-24 still open
    summary = writer.finish()
    table = pq.read_table(out)
    assert table.column("listing_id").to_pylist() == [str(i) for i in range(25)]
    assert (summary.rows, summary.flagged, summary.failed) == (25, 9, 4)
    assert pq.read_schema(out).metadata[b"knockoff.model_version"] == b"m1"
    assert not parts_dir(out).exists()


def test_batches_are_held_into_row_groups_of_row_group_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 12)
    out = tmp_path / "r.parquet"
    writer = PartWriter(out, {"inputs": ["a"]}, rows_per_part=40)
    for start in range(0, 50, 5):
        writer.write(_rows(start, 5))
    (part,) = parts_dir(out).glob("part-*.parquet")  # rows 0-39; 40-49 held, not yet written
    assert [pq.ParquetFile(part).metadata.row_group(i).num_rows for i in range(3)] == [15, 15, 10]
    assert not list(parts_dir(out).glob("*.tmp"))
    writer.finish()
    assert pq.read_table(out).column("listing_id").to_pylist() == [str(i) for i in range(50)]


def test_an_unfinished_part_is_dropped_and_resume_skips_the_committed_rows(tmp_path):
    out = tmp_path / "r.csv"
    run = {"inputs": ["crawl"], "model_version": "m1"}
    writer = PartWriter(out, run, rows_per_part=4)
    writer.write(_rows(0, 6))  # one batch of 6 reaches rows_per_part: committed as one part
    writer.write(_rows(6, 2))  # rows 6-7 in an open part
    # the process dies here: nothing closes the open part
    resumed = PartWriter(out, run, resume=True, rows_per_part=4)
    assert resumed.done == 6
    records = [ImageRecord(path=f"p{i}.jpg") for i in range(10)]
    remaining = list(resumed.skip_done(records))
    assert [r.path for r in remaining] == [f"p{i}.jpg" for i in range(6, 10)]
    resumed.write(_rows(6, 4))
    resumed.finish()
    lines = out.read_text().splitlines()
    assert len(lines) == 11 and [line.split(",")[1] for line in lines[1:]] == [f"p{i}.jpg" for i in range(10)]


def test_leftover_parts_need_resume_and_the_same_run(tmp_path):
    out = tmp_path / "r.parquet"
    writer = PartWriter(out, {"inputs": ["a"], "model_version": "m1"}, rows_per_part=2)
    writer.write(_rows(0, 2))
    with pytest.raises(ResumeError, match="--resume"):
        PartWriter(out, {"inputs": ["a"], "model_version": "m1"})
    with pytest.raises(ResumeError, match="model_version"):
        PartWriter(out, {"inputs": ["a"], "model_version": "m2"}, resume=True)


def test_resume_refuses_changed_inputs(tmp_path):
    out = tmp_path / "r.parquet"
    writer = PartWriter(out, {"inputs": ["a"]}, rows_per_part=2)
    writer.write(_rows(0, 2))
    resumed = PartWriter(out, {"inputs": ["a"]}, resume=True)
    with pytest.raises(ResumeError, match="row 1 was p1.jpg, now other.jpg"):
        list(resumed.skip_done([ImageRecord(path="p0.jpg"), ImageRecord(path="other.jpg")]))


def test_a_run_that_commits_nothing_leaves_nothing(tmp_path):
    out = tmp_path / "r.parquet"
    writer = PartWriter(out, {"inputs": ["a"]}, rows_per_part=100)
    writer.write(_rows(0, 3))
    writer.close()
    assert not parts_dir(out).exists() and not out.exists()
    PartWriter(out, {"inputs": ["a"]}).close()  # the next run starts fresh, no --resume needed


@pytest.mark.parametrize("search", [False, True], ids=["no-duplicate-search", "duplicate-search"])
def test_parts_keep_embeddings_only_for_a_duplicate_search_and_the_output_never(tmp_path, search):
    from knockoff.screening.duplicates import DuplicateOptions

    out = tmp_path / "r.parquet"
    rows = [{**row, "status": "scored", "embedding": [1.0, float(i)]} for i, row in enumerate(_rows(1, 4))]
    writer = PartWriter(out, {"inputs": ["a"]}, rows_per_part=2, duplicates=DuplicateOptions() if search else None)
    writer.write(rows)
    part = sorted(parts_dir(out).glob("part-*.parquet"))[0]
    kept = pq.read_table(part).column("embedding")
    assert len(kept) == 4 and kept.null_count == (0 if search else 4)
    writer.finish()
    assert "embedding" not in pq.read_schema(out).names
