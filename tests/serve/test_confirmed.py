import pyarrow.parquet as pq
from knockoff_serve.confirmed import export_confirmed
from knockoff_serve.decisions import decide, undo_last
from knockoff_serve.queue import Viewer

from knockoff.data.manifest import read_manifest


def pending(database, count):
    return [r[0] for r in database.execute("SELECT id FROM items WHERE decision IS NULL AND error IS NULL ORDER BY id LIMIT ?", (count,))]


def test_export_writes_a_labelled_manifest_with_copied_photos(database, run, users, tmp_path):
    ana = Viewer(users["ana"], "ana", "analyst")
    fake, genuine, unsure = pending(database, 3)
    decide(database, fake, ana, "counterfeit", "logo font is off")
    decide(database, genuine, ana, "genuine")
    decide(database, unsure, ana, "unsure")
    summary = export_confirmed(database, tmp_path / "confirmed")
    assert (summary.fakes, summary.genuine, summary.missing) == (1, 1, [])
    rows = pq.read_table(tmp_path / "confirmed" / "manifest.parquet").to_pylist()
    assert {r["label"] for r in rows} == {"fake", "genuine"}
    fake_row = next(r for r in rows if r["label"] == "fake")
    assert fake_row["decided_by"] == "ana" and fake_row["note"] == "logo font is off" and fake_row["model_version"] == "model-a"
    copied = tmp_path / "confirmed" / fake_row["path"]
    assert copied.read_bytes() == open(fake_row["original_path"], "rb").read() and fake_row["sha1"] in copied.name
    # the manifest is a normal Knockoff manifest: product + label, paths relative to it
    records = list(read_manifest(tmp_path / "confirmed" / "manifest.parquet"))
    assert {r.authenticity for r in records} == {"fake", "genuine"} and all(r.product for r in records)


def test_export_merges_with_earlier_exports_and_withdraws_undone_labels(database, run, users, tmp_path):
    ana = Viewer(users["ana"], "ana", "analyst")
    first, second = pending(database, 2)
    decide(database, first, ana, "counterfeit")
    decide(database, second, ana, "counterfeit")
    export_confirmed(database, tmp_path / "confirmed")
    undo_last(database, ana)  # second is pending again
    summary = export_confirmed(database, tmp_path / "confirmed")
    assert summary.fakes == 1 and summary.removed == 1
    # an export from another review store is kept
    database.execute("DELETE FROM decisions")
    database.execute("UPDATE items SET decision = NULL, decided_by = NULL")
    assert export_confirmed(database, tmp_path / "confirmed").kept_from_before == 1
