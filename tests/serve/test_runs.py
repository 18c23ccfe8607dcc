import pytest
from knockoff_serve.runs import import_results, queue_rank, results_files

from tests.serve.conftest import result_rows, write_results


def test_import_once_per_file(database, tmp_path):
    path = write_results(tmp_path / "r.parquet", result_rows(10))
    first = import_results(database, path)
    again = import_results(database, path)
    assert first == (1, True) and again == (1, False)
    assert database.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 10
    run = database.execute("SELECT * FROM runs").fetchone()
    assert (run["rows"], run["model_version"], run["index_version"]) == (10, "model-a", "gallery-a")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_text_formats_import_alike(database, tmp_path, suffix):
    import_results(database, write_results(tmp_path / f"r{suffix}", result_rows(8)))
    evidence = database.execute("SELECT evidence FROM items WHERE error IS NULL LIMIT 1").fetchone()[0]
    assert '"nearest_fake"' in evidence and '"R1"' in evidence


def test_rank_puts_flagged_first_then_score_then_failures():
    assert queue_rank({"score": 0.51, "flagged": True}) > queue_rank({"score": 0.99, "flagged": False}) > queue_rank({"score": 0.1, "flagged": False})
    assert queue_rank({"score": None, "error": "x"}) < queue_rank({"score": 0.0, "flagged": False})


def test_results_folder_is_expanded(tmp_path):
    write_results(tmp_path / "a.parquet", result_rows(2))
    write_results(tmp_path / "b.csv", result_rows(2))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in results_files([tmp_path])] == ["a.parquet", "b.csv"]
    with pytest.raises(FileNotFoundError):
        results_files([tmp_path / "missing.parquet"])
