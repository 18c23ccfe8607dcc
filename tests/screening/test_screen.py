import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from knockoff.data.records import ImageRecord
from knockoff.gallery.indexing import IndexConfig, index
from knockoff.gallery.store import Gallery, ModelMismatchError
from knockoff.images.decode import load_rgb
from knockoff.runtime.batches import DecodedBatch
from knockoff.screening.parts import parts_dir
from knockoff.screening.screen import Scorer, ScreenOptions, iter_inputs, run_pipeline, screen
from tests.helpers import REPO, SAMPLE, interrupt_scoring, write_crawl, write_image


def test_folder_glob_and_manifest_inputs_each_give_rows(tiny_onnx, tiny_gallery, tmp_path):
    folder = tmp_path / "crawl"
    for i, photo in enumerate(sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:3]):
        (folder / f"shop{i}").mkdir(parents=True)
        shutil.copy(photo, folder / f"shop{i}" / photo.name)
    write_image(tmp_path / "extra" / "a.png")
    summary = screen([str(folder), str(tmp_path / "extra" / "*.png"), str(SAMPLE / "listings.csv")],
                     tmp_path / "out.jsonl", tiny_onnx, tiny_gallery)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == summary.screened == 3 + 1 + 33
    assert summary.failed == 1 and summary.flagged == sum(bool(r["flagged"]) for r in rows)
    assert rows[0]["listing_id"].startswith("shop0/") and rows[3]["listing_id"] == "a"
    assert {r["model_version"] for r in rows} == {summary.model_version}
    assert "screened 37 images" in summary.line() and "1 failed" in summary.line()


def test_gallery_of_another_model_is_refused(tiny_onnx, tiny_gallery, tmp_path):
    other = shutil.copytree(tiny_gallery, tmp_path / "other-gallery")
    info = json.loads((other / "gallery.json").read_text())
    info["model_version"] = "someone-else"
    (other / "gallery.json").write_text(json.dumps(info))
    with pytest.raises(ModelMismatchError):
        screen([str(SAMPLE / "listings.csv")], tmp_path / "r.parquet", tiny_onnx, other)
    assert not (tmp_path / "r.parquet").exists()


def test_uncalibrated_gallery_is_refused(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",)), tiny_onnx, tmp_path / "raw-gallery")
    with pytest.raises(ValueError, match="no calibration"):
        screen([str(SAMPLE / "listings.csv")], tmp_path / "r.parquet", tiny_onnx, tmp_path / "raw-gallery")


def test_model_streams_keep_input_order_and_give_the_rows_one_stream_gives(tiny_onnx, tiny_gallery, tmp_path):
    """Batches run in the model several at once (one thread each) yet reach the output in input order."""
    tables = {}
    for streams in (1, 3):
        options = ScreenOptions(batch_size=2, model_streams=streams)
        screen([str(SAMPLE / "listings.csv")], tmp_path / f"{streams}.parquet", tiny_onnx, tiny_gallery, options)
        tables[streams] = pq.read_table(tmp_path / f"{streams}.parquet", columns=["path", "status", "score", "error"]).to_pylist()
    assert [r["path"] for r in tables[3]] == [r["path"] for r in tables[1]] and len(tables[1]) == 33
    for one, three in zip(tables[1], tables[3]):
        assert one["status"] == three["status"] and one["error"] == three["error"]
        assert (one["score"] is None and three["score"] is None) or abs(one["score"] - three["score"]) < 1e-5
    assert ScreenOptions(threads=2).streams == 1 and ScreenOptions(device="cuda").streams == 1
    assert ScreenOptions(model_streams=2).session_threads >= 1


@pytest.mark.parametrize("model_batch", [1, 3])
def test_batches_embedded_in_smaller_model_runs_give_the_same_rows(tiny_onnx, tiny_gallery, tmp_path, model_batch):
    """A batch is searched, scored and written whole, while the model runs it in pieces."""
    tables = {}
    for name, options in (("whole", ScreenOptions(batch_size=8, model_batch=8)),
                          ("pieces", ScreenOptions(batch_size=8, model_batch=model_batch))):
        screen([str(SAMPLE / "listings.csv")], tmp_path / f"{name}.parquet", tiny_onnx, tiny_gallery, options)
        tables[name] = pq.read_table(tmp_path / f"{name}.parquet", columns=["path", "status", "score", "error"]).to_pylist()
    assert [r["path"] for r in tables["pieces"]] == [r["path"] for r in tables["whole"]] and len(tables["whole"]) == 33
    for whole, pieces in zip(tables["whole"], tables["pieces"]):
        assert whole["status"] == pieces["status"] and whole["error"] == pieces["error"]
        assert (whole["score"] is None and pieces["score"] is None) or abs(whole["score"] - pieces["score"]) < 1e-5


def test_the_model_runs_2_photos_at_a_time_on_cpu_and_whole_batches_on_a_gpu():
    assert ScreenOptions().run_batch == 2 and ScreenOptions(model_batch=4).run_batch == 4
    assert ScreenOptions(device="cuda").run_batch is None


@pytest.mark.parametrize(("options", "expected"), [(ScreenOptions(), 1), (ScreenOptions(search_threads=3), 3)])
def test_post_thread_searches_on_the_openmp_threads_it_is_given(tiny_onnx, tiny_gallery, options, expected):
    """On CPU the model streams fill every core: FAISS's OpenMP workers would spin against them."""
    import faiss

    scorer = Scorer(tiny_onnx, tiny_gallery)
    main_thread_threads = faiss.omp_get_max_threads()
    seen = []
    run_pipeline(iter_inputs([str(SAMPLE / "uploads")]), scorer, options, lambda rows: seen.append(faiss.omp_get_max_threads()))
    assert seen and set(seen) == {expected}
    assert faiss.omp_get_max_threads() == main_thread_threads  # set for the post thread alone
    assert ScreenOptions(device="cuda").post_search_threads is None


def test_a_failed_record_between_decoded_ones_shifts_no_match(tiny_onnx, tiny_gallery):
    """Rows are built column by column: each decoded record keeps its own match and evidence."""
    scorer = Scorer(tiny_onnx, tiny_gallery)
    photos = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:3]
    records = [ImageRecord(path=str(photo), listing_id=f"L{i}") for i, photo in enumerate(photos)]
    images = np.stack([load_rgb(photo, scorer.input_size) for photo in photos])
    clean = scorer.rows(DecodedBatch(records, images, [None] * 3), scorer.embed(images))
    broken = DecodedBatch(records, images[[0, 2]], [None, "cannot decode", None])
    rows = scorer.rows(broken, scorer.embed(broken.images)).to_pylist()
    assert [r["listing_id"] for r in rows] == ["L0", "L1", "L2"]
    assert rows[1]["status"] == "error" and rows[1]["error"] == "cannot decode"
    assert all(rows[1][name] is None for name in ("score", "flagged", "product", "neighbors", "nearest_genuine", "embedding"))
    for row, expected in zip((rows[0], rows[2]), (clean.slice(0, 1).to_pylist()[0], clean.slice(2, 1).to_pylist()[0])):
        assert row["nearest_genuine"] == expected["nearest_genuine"] and row["neighbors"] == expected["neighbors"]
        assert (row["status"], row["product"], row["score"]) == (expected["status"], expected["product"], expected["score"])
        assert row["neighbors"] and row["embedding"] == pytest.approx(expected["embedding"], abs=1e-3)


def test_results_carry_versions_in_file_metadata(tiny_onnx, tiny_gallery, tmp_path):
    summary = screen([str(SAMPLE / "uploads")], tmp_path / "r.parquet", tiny_onnx, tiny_gallery)
    metadata = pq.read_schema(tmp_path / "r.parquet").metadata
    assert metadata[b"knockoff.index_version"].decode() == Gallery.load(tiny_gallery).info.version == summary.index_version
    assert summary.failed == 1 and summary.screened == 1


def test_resume_after_an_interruption_screens_only_the_rest(tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    crawl = write_crawl(tmp_path / "crawl.csv", 100)
    options = ScreenOptions(batch_size=8, rows_per_part=16)
    reference = screen([str(crawl)], tmp_path / "full.parquet", tiny_onnx, tiny_gallery, options)
    real_rows = Scorer.rows
    interrupt_scoring(monkeypatch, after_batches=6)
    with pytest.raises(KeyboardInterrupt):
        screen([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery, options)
    assert not (tmp_path / "r.parquet").exists()
    with pytest.raises(ValueError, match="--resume"):
        screen([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery, options)

    calls = []
    monkeypatch.setattr(Scorer, "rows", lambda self, b, e: calls.append(len(b.records)) or real_rows(self, b, e))
    summary = screen([str(crawl)], tmp_path / "r.parquet", tiny_onnx, tiny_gallery, replace(options, resume=True))
    assert summary.resumed_from == 32 and sum(calls) == 100 - 32  # two whole parts survived
    _assert_same_rows(tmp_path / "r.parquet", tmp_path / "full.parquet")
    assert (summary.screened, summary.failed, summary.flagged) == (reference.screened, reference.failed, reference.flagged)


def test_resume_after_sigkill_loses_and_duplicates_nothing(tiny_onnx, tiny_gallery, tmp_path):
    crawl = write_crawl(tmp_path / "crawl.csv", 1500)
    command = [sys.executable, "-m", "knockoff", "screen", str(crawl), "--model", str(tiny_onnx), "--index",
               str(tiny_gallery), "--batch-size", "8", "--part-rows", "64", "--threads", "1", "--workers", "1"]
    out = tmp_path / "r.parquet"
    process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(parts_dir(out).glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists() and len(list(parts_dir(out).glob("part-*.parquet"))) >= 2

    resumed = subprocess.run([*command, "--out", str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after" in resumed.stdout and "screened 1500 images" in resumed.stdout
    full = subprocess.run([*command, "--out", str(tmp_path / "full.parquet")], capture_output=True, text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    _assert_same_rows(out, tmp_path / "full.parquet")


def _assert_same_rows(path: Path, expected_path: Path) -> None:
    table, expected = pq.read_table(path), pq.read_table(expected_path)
    assert table.column("listing_id").to_pylist() == expected.column("listing_id").to_pylist()
    assert len(set(table.column("listing_id").to_pylist())) == table.num_rows
    assert table.column("error").to_pylist() == expected.column("error").to_pylist()
    scores = np.array(table.column("score").to_pylist(), dtype=float)
    expected_scores = np.array(expected.column("score").to_pylist(), dtype=float)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)


@pytest.mark.parametrize("part_rows, limit", [(8, 6000), (1, 40000)], ids=["while-screening", "while-merging"])
def test_a_full_disk_is_one_error_line_leaves_nothing_stray_and_resume_finishes(tiny_onnx, tiny_gallery, tmp_path, part_rows, limit):
    """Writes fail as on a full disk: a real OS limit on file size (RLIMIT_FSIZE) in a child
    process; small parts fit under it and the merged output does not (the merge's failure)."""
    out = tmp_path / "r.csv"
    arguments = ["screen", str(SAMPLE / "sneakers"), "--out", str(out), "--model", str(tiny_onnx), "--index", str(tiny_gallery),
                 "--part-rows", str(part_rows)]
    limited = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
               f"from knockoff.cli import app; sys.argv = ['knockoff'] + {arguments!r}; app()")
    full = subprocess.run([sys.executable, "-c", limited], capture_output=True, text=True, cwd=REPO)
    assert full.returncode == 1, full.stderr[-2000:]
    assert "error: could not write the results" in full.stderr and "--resume" in full.stderr
    assert "Traceback" not in full.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.partial")) and not list(tmp_path.rglob("*.tmp"))
    finished = subprocess.run([sys.executable, "-m", "knockoff", *arguments, "--resume"], capture_output=True, text=True, cwd=REPO)
    assert finished.returncode == 0, finished.stderr[-2000:]
    import pyarrow.csv as pacsv

    assert pacsv.read_csv(out).num_rows == len(list((SAMPLE / "sneakers").rglob("*.jpg")))


def test_bad_manifest_lines_are_error_rows_and_resume_gets_past_them(tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    photos = sorted(str(p) for p in (SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:12]
    lines = [json.dumps({"listing_id": f"L{i}", "path": p}) for i, p in enumerate(photos)]
    lines.insert(5, '{"listing_id": "broken", "path": ')  # a cut-off line
    lines.append('{"listing_id": "last", "label": "maybe", "path": "%s"}' % photos[0])
    manifest = tmp_path / "crawl.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.parquet"
    summary = screen([str(manifest)], out, tiny_onnx, tiny_gallery, ScreenOptions(batch_size=4, rows_per_part=4))
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == summary.screened == 14 and summary.failed == 2
    errors = {r["listing_id"]: r["error"] for r in rows if r["error"]}
    assert set(errors) == {None, "last"} and "line 6: not a JSON object" in errors[None]
    assert "line 14: authenticity label 'maybe'" in errors["last"]
    assert all(r["status"] == "error" for r in rows if r["error"])
    # interrupted after the bad line, --resume finishes the run instead of failing on it again
    out.unlink()
    interrupt_scoring(monkeypatch, after_batches=3)
    with pytest.raises(KeyboardInterrupt):
        screen([str(manifest)], out, tiny_onnx, tiny_gallery, ScreenOptions(batch_size=4, rows_per_part=4))
    monkeypatch.undo()
    resumed = screen([str(manifest)], out, tiny_onnx, tiny_gallery, ScreenOptions(batch_size=4, rows_per_part=4, resume=True))
    assert resumed.screened == 14 and resumed.failed == 2


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak RSS read from Linux's /proc")
def test_screening_a_decompression_bomb_costs_a_row_not_gigabytes(tiny_onnx, tiny_gallery, tmp_path):
    """The 13,000 x 13,000 16-bit PNG of issue 11 (329 KB on disk) beside real photos; peak RSS of
    the whole screening process, measured by the OS."""
    from tests.helpers import zero_png

    crawl = tmp_path / "crawl"
    zero_png(crawl / "bomb-1.png", 13_000, 13_000)
    shutil.copy(crawl / "bomb-1.png", crawl / "bomb-2.png")
    for photo in sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[:4]:
        shutil.copy(photo, crawl / photo.name)
    out = tmp_path / "r.parquet"
    # VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's, pytest's, across exec)
    measure = ("import sys; from pathlib import Path; from knockoff.cli import app; sys.argv = ['knockoff'] + sys.argv[1:]\n"
               "try:\n    app()\nfinally:\n"
               "    peak = next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM'))\n"
               "    print('peak_rss_kb', peak, file=sys.stderr)")
    finished = subprocess.run([sys.executable, "-c", measure, "screen", str(crawl), "--out", str(out), "--model", str(tiny_onnx),
                               "--index", str(tiny_gallery)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    peak_mb = int(finished.stderr.split("peak_rss_kb")[-1].split()[0]) / 1024
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    assert len(rows) == 6 and sum(r["error"] is None for r in rows.values()) == 4
    assert "169 megapixels, over Knockoff's ceiling" in rows["bomb-1.png"]["error"]
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"  # before the ceiling: 8.9 GB for two such files


def test_a_copy_of_a_reference_gets_the_copy_verdict_from_the_gallery_alone(tiny_onnx, tiny_gallery, tmp_path, monkeypatch):
    """Re-encoded, slightly shrunk copies of a known fake and of a genuine reference, screened
    with the data root pointing nowhere: the gallery's thumbnails are all the check reads."""
    from PIL import Image

    gallery = Gallery.load(tiny_gallery)
    references = gallery.references.to_pylist()
    fake = next(r for r in references if r["authenticity"] == "fake")
    genuine = next(r for r in references if r["authenticity"] == "genuine")
    for name, reference in (("fake-copy.jpg", fake), ("genuine-copy.jpg", genuine)):
        image = Image.open(SAMPLE / reference["path"])
        image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(tmp_path / name, quality=80)
    own = next(p for p in sorted((SAMPLE / "sneakers/valid/images").glob("*.jpg"))
               if "0005_jpg" in p.name)  # a valid photo of no train photograph
    shutil.copy(own, tmp_path / "own.jpg")
    monkeypatch.setenv("KNOCKOFF_DATA", str(tmp_path / "nowhere"))
    screen([str(tmp_path / name) for name in ("fake-copy.jpg", "genuine-copy.jpg", "own.jpg")], tmp_path / "out.parquet",
           tiny_onnx, tiny_gallery)
    rows = {Path(r["path"]).name: r for r in pq.read_table(tmp_path / "out.parquet").to_pylist()}
    copied = {name: next(r for r in references if r["path"] == rows[name]["reference_copy"])
              for name in ("fake-copy.jpg", "genuine-copy.jpg")}
    assert copied["fake-copy.jpg"]["authenticity"] == "fake" and copied["genuine-copy.jpg"]["authenticity"] == "genuine"
    fake_row, genuine_row = rows["fake-copy.jpg"], rows["genuine-copy.jpg"]
    assert fake_row["status"] == "scored" and fake_row["flagged"] and "copies the known fake" in fake_row["status_reason"]
    assert genuine_row["status"] == "copy" and genuine_row["flagged"] is False and genuine_row["score"] is not None
    assert "says nothing about the goods" in genuine_row["status_reason"]
    without = screen([str(tmp_path / "genuine-copy.jpg")], tmp_path / "off.parquet", tiny_onnx, tiny_gallery,
                     ScreenOptions(copy_check=False))
    assert without.screened == 1 and pq.read_table(tmp_path / "off.parquet").column("reference_copy").to_pylist() == [None]


def test_judged_photos_carry_their_regions_and_show_explains_them(tiny_onnx, tiny_gallery, tmp_path):
    """Local evidence: each scored photo gets at most 5 regions on the photo, most unlike first,
    each naming a reference of its product; other rows none; --no-regions none at all."""
    from typer.testing import CliRunner

    from knockoff.cli import app

    out = tmp_path / "r.parquet"
    screen([str(SAMPLE / "listings.csv")], out, tiny_onnx, tiny_gallery)
    rows = pq.read_table(out).to_pylist()
    gallery = Gallery.load(tiny_gallery)
    paths = dict(zip(gallery.references.column("path").to_pylist(), gallery.references.column("product").to_pylist()))
    scored = [r for r in rows if r["status"] == "scored"]
    assert scored and all(r["regions"] is None for r in rows if r["status"] != "scored")
    for row in scored:
        regions = row["regions"]
        assert 1 <= len(regions) <= 5
        assert [r["distance"] for r in regions] == sorted((r["distance"] for r in regions), reverse=True)
        for region in regions:
            assert 0 <= region["x0"] < region["x1"] <= 1 and 0 <= region["y0"] < region["y1"] <= 1
            assert 0 <= region["ref_x0"] < region["ref_x1"] <= 1 and region["side"] in ("genuine", "fake")
            assert paths[region["reference_path"]] == row["product"]
    shown = CliRunner().invoke(app, ["show", str(out), "--explain", scored[0]["path"]])
    assert shown.exit_code == 0, shown.output
    assert scored[0]["regions"][0]["reference_path"] in shown.output and "distance" in shown.output
    missing = CliRunner().invoke(app, ["show", str(out), "--explain", "no-such-photo"])
    assert missing.exit_code == 1 and "no photo 'no-such-photo'" in missing.output
    screen([str(SAMPLE / "listings.csv")], tmp_path / "plain.parquet", tiny_onnx, tiny_gallery, ScreenOptions(regions=False))
    plain = pq.read_table(tmp_path / "plain.parquet")
    assert plain.column("regions").null_count == plain.num_rows
    assert plain.drop(["regions"]).equals(pq.read_table(out).drop(["regions"]))  # the verdicts do not change


def test_run_from_another_folder_screen_finds_the_shipped_model_and_gallery(tmp_path, monkeypatch):
    """The defaults (models/knockoff.onnx, models/gallery) are the checkout's where the working
    folder has none; a path given explicitly is taken as given."""
    from typer.testing import CliRunner

    from knockoff.cli import app
    from knockoff.screening.screen import CHECKOUT

    photo = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))[0]
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["screen", str(photo), "--out", "r.parquet"])
    assert done.exit_code == 0, done.output
    shipped = Gallery.load(CHECKOUT / "models" / "gallery").info.version
    assert f"gallery {shipped}" in done.output and pq.read_table(tmp_path / "r.parquet").num_rows == 1
    missing = CliRunner().invoke(app, ["screen", str(photo), "--out", "s.parquet", "--model", "elsewhere/knockoff.onnx"])
    assert missing.exit_code == 1 and "model elsewhere/knockoff.onnx not found" in missing.output


def test_knockoff_models_names_the_models_folder_and_a_missing_one_says_where_it_looked(tmp_path, monkeypatch):
    import shutil

    from knockoff.screening.screen import CHECKOUT, DEFAULT_GALLERY, DEFAULT_MODEL, shipped

    models = tmp_path / "deployed"
    (models / "gallery").mkdir(parents=True)
    shutil.copy(CHECKOUT / DEFAULT_MODEL, models / "knockoff.onnx")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNOCKOFF_MODELS", str(models))
    assert shipped(DEFAULT_MODEL, DEFAULT_MODEL) == models / "knockoff.onnx"
    assert shipped(DEFAULT_GALLERY, DEFAULT_GALLERY) == models / "gallery"
    monkeypatch.setattr("knockoff.screening.screen.CHECKOUT", tmp_path / "no-checkout")
    monkeypatch.setenv("KNOCKOFF_MODELS", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as missing:
        shipped(DEFAULT_MODEL, DEFAULT_MODEL)
    text = str(missing.value)
    for place in (tmp_path / "empty" / "knockoff.onnx", tmp_path / "models" / "knockoff.onnx",
                  tmp_path / "no-checkout" / "models" / "knockoff.onnx"):
        assert str(place) in text
    assert "KNOCKOFF_MODELS" in text
