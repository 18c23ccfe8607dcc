import shutil

import pyarrow.parquet as pq

from knockoff.data.prepare import PrepareConfig, prepare, read_prepared
from tests.helpers import SAMPLE


def test_manifests_are_identical_wherever_the_data_lives(tmp_path, monkeypatch):
    outputs = []
    for place in ("one", "two"):
        root = tmp_path / place / "datasets"
        shutil.copytree(SAMPLE / "sneakers", root / "sneakers")
        monkeypatch.setenv("KNOCKOFF_DATA", str(root))
        out = tmp_path / place / "prepared"
        prepare(PrepareConfig(sources={"valid": "sneakers/valid"}), root, out)
        outputs.append((out / "valid.parquet").read_bytes())
    assert outputs[0] == outputs[1]


def test_broken_images_are_recorded_and_skipped(tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    shutil.copytree(SAMPLE / "sneakers", root / "sneakers")
    victim = sorted((root / "sneakers" / "valid" / "images").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:1500])
    monkeypatch.setenv("KNOCKOFF_DATA", str(root))
    summary = prepare(PrepareConfig(sources={"valid": "sneakers/valid"}), root, tmp_path / "out")
    assert summary == {"valid": {"images": 32, "unreadable": 1}}
    table = pq.read_table(tmp_path / "out" / "valid.parquet").to_pylist()
    broken = [row for row in table if row["error"]]
    assert len(broken) == 1 and broken[0]["path"] == "sneakers/valid/images/" + victim.name
    assert all(len(row["sha1"]) == 40 and row["width"] == 640 for row in table if not row["error"])
    records, unreadable = read_prepared(tmp_path / "out" / "valid.parquet")
    assert len(records) == 31 and unreadable == 1
    assert all(r.path.startswith(str(root)) for r in records)  # resolved under KNOCKOFF_DATA


def test_optional_sources_may_be_missing_or_overlap_the_datasets(tmp_path, monkeypatch):
    import csv

    root = tmp_path / "datasets"
    shutil.copytree(SAMPLE / "sneakers", root / "sneakers")
    monkeypatch.setenv("KNOCKOFF_DATA", str(root))
    monkeypatch.chdir(tmp_path)  # the "repository": confirmed data lives in it, not under the data root
    config = PrepareConfig(sources={"valid": "sneakers/valid"}, optional_sources={"confirmed": "data/confirmed/manifest.csv"})
    summary = prepare(config, root, tmp_path / "out")
    assert summary["confirmed"] == {"images": 0, "unreadable": 0, "already_in_datasets": 0}
    assert read_prepared(tmp_path / "out" / "confirmed.parquet") == ([], 0)

    confirmed = tmp_path / "data" / "confirmed"
    (confirmed / "images").mkdir(parents=True)
    photos = sorted((root / "sneakers" / "valid" / "images").glob("*.jpg"))
    shutil.copy(photos[0], confirmed / "images" / "copy-of-a-valid-photo.jpg")  # would leak validation
    shutil.copy(sorted((SAMPLE / "sneakers" / "train" / "images").glob("*.jpg"))[0], confirmed / "images" / "new.jpg")
    with open(confirmed / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "product", "label"])
        writer.writerow(["images/copy-of-a-valid-photo.jpg", "nike air force", "fake"])
        writer.writerow(["images/new.jpg", "nike air force", "fake"])
    summary = prepare(config, root, tmp_path / "out")
    assert summary["confirmed"] == {"images": 1, "unreadable": 0, "already_in_datasets": 1}
    table = pq.read_table(tmp_path / "out" / "confirmed.parquet")
    assert table.column("path").to_pylist() == ["data/confirmed/images/new.jpg"]  # relative to the repository
    (record,), _ = read_prepared(tmp_path / "out" / "confirmed.parquet")
    assert (tmp_path / record.path).is_file() and record.authenticity == "fake"
