import csv
import os
import re
import shutil
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from knockoff.cli import app
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores
from knockoff.screening.results import RESULT_SCHEMA
from tests.helpers import SAMPLE, review_store

# Held-back photos of the product that 0.55 separates, half of them fakes.
HELD_BACK = HeldBackScores(0.95, 0.01, {"shoe": HeldBackPool([i / 200 for i in range(100)], [0.55 + i / 230 for i in range(100)])},
                           {"nike air force": "shoe"})

PHOTOS = sorted((SAMPLE / "sneakers" / "valid" / "images").glob("*.jpg"))
REFERENCES = sorted((SAMPLE / "sneakers" / "train" / "images").glob("*.jpg"))
CHROMIUM = os.environ.get("KNOCKOFF_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")


def reference(j: int, kind: str) -> dict:
    return {"row": j, "similarity": 0.9 - 0.01 * j, "path": str(REFERENCES[j].relative_to(SAMPLE)), "listing_id": f"R{j}",
            "product": "nike air force", "authenticity": kind, "source": "ref"}


def rows() -> list[dict]:
    made = []
    for i in range(8):
        row = dict.fromkeys(RESULT_SCHEMA.names)
        seller = "shop-1" if i < 6 else "shop-2"
        score = 0.92 if i in (0, 1, 4) else 0.1
        row.update(listing_id=f"{seller}-L{i // 2}", seller_id=seller, path=str(PHOTOS[i % 6]), status="scored",
                   score=score, flagged=score > 0.5, threshold=0.55, product="nike air force", marketplace="shopx",
                   listing_url=f"https://shopx.example/item/{i // 2}", title="=HYPERLINK(\"http://evil\")" if i == 0 else "AF1 low",
                   price=79.0, currency="EUR", model_version="m1", index_version="g1",
                   nearest_genuine=[reference(0, "genuine"), reference(2, "genuine")], nearest_fake=[reference(1, "fake")])
        made.append(row)
    made[4]["duplicate_group"] = made[7]["duplicate_group"] = 4  # shop-2 shows a copy of shop-1's photo
    made[5]["reference_copy"] = str(REFERENCES[3].relative_to(SAMPLE))  # a stolen genuine reference photo
    made[5]["status"] = "copy"
    made[0]["regions"] = [{"x0": 0.4, "y0": 0.3, "x1": 0.55, "y1": 0.45, "distance": 0.412,
                           "reference_path": str(REFERENCES[1].relative_to(SAMPLE)), "ref_x0": 0.5, "ref_y0": 0.5,
                           "ref_x1": 0.65, "ref_y1": 0.65, "side": "fake"}]
    return made


@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.parquet"
    table = pa.Table.from_pylist(rows(), schema=RESULT_SCHEMA)
    pq.write_table(table.replace_schema_metadata({b"knockoff.model_version": b"m1", b"knockoff.index_version": b"g1",
                                                  b"knockoff.held_back_scores": HELD_BACK.to_json().encode()}), path)
    return path


@pytest.fixture
def store(tmp_path):
    path = review_store(tmp_path / "knockoff.db", 8)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO items (id, run_id, position, listing_id, seller_id, path, rank, decision, decided_by, decided_at) "
                           "VALUES (1, 1, 2, 'shop-1-L1', 'shop-1', ?, 0, 'counterfeit', 7, '2026-11-24T06:00:00Z')", (str(PHOTOS[2]),))
        connection.execute("UPDATE items SET marketplace = 'shopx'")
        connection.execute("INSERT INTO decisions (item_id, user_id, action, decision, note) VALUES (1, 7, 'decide', 'counterfeit', 'stitching off')")
    return path


def test_the_pack_holds_flagged_and_confirmed_listings_with_evidence_and_a_safe_takedown_csv(results, store, tmp_path, monkeypatch):
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    outcome = CliRunner().invoke(app, ["evidence", str(results), "--seller", "shop-1", "--out", str(tmp_path / "pack"),
                                       "--store", str(store), "--no-pdf"])
    assert outcome.exit_code == 0, outcome.output
    page = (tmp_path / "pack" / "evidence-shop-1.html").read_text()
    assert "shop-1-L0" in page and "shop-1-L2" in page  # flagged
    assert "shop-1-L1" in page and "by ana" in page and "stitching off" in page  # confirmed by an analyst
    assert "shop-2" not in page.replace("shop-2-", "")  # another seller's listings stay out
    assert page.count("data:image/jpeg;base64,") >= 3 * 4 and "src='http" not in page  # self-contained
    # 8 judged photos are too few to estimate the run's share of fakes: the held-back half.
    assert "model m1" in page and "gallery g1" in page
    assert "0.920 (listing threshold 0.550, precision at least 0.98 at 0.500 fakes)" in page
    assert "also appears in 1 other listing(s) of 1 other seller(s)" in page  # PHOTOS[0] is shop-2's too
    assert f"Photo {PHOTOS[4].name} also appears in 1 other listing(s) of 1 other seller(s)" in page  # a copy of it is
    # local evidence: the photo's region beside the region of the known fake it matched, both cropped
    assert "region 1 · 41% unlike the closest genuine detail" in page
    assert f"beside nearer a known fake than any genuine reference: {REFERENCES[1].name}" in page
    assert page.count("<figure class='region fake'>") == 1
    # a copy of a genuine reference is a caution, said once, not evidence against the listing
    caution = f"Caution: photo {PHOTOS[5].name} copies the genuine reference {REFERENCES[3].name}: a reused brand photo"
    assert page.count(caution) == 1 and f"<div class='muted'>{caution}" in page
    assert page.count(f"the genuine reference it copies<br>{REFERENCES[3].name}") == 1
    assert "−0." not in page and "· -0." not in page  # no bare negative similarity
    assert re.search(r"id='seller-risk'><b>Seller: (high|uncertain|low) risk: \d+ of \d+ judged listings flagged", page)
    lines = list(csv.reader((tmp_path / "pack" / "evidence-shop-1-takedown.csv").open()))
    assert lines[0][:2] == ["listing_id", "listing_url"] and {line[0] for line in lines[1:]} == {"shop-1-L0", "shop-1-L1", "shop-1-L2"}
    assert all(not cell.startswith("=") for line in lines for cell in line)  # no spreadsheet formula survives
    assert CliRunner().invoke(app, ["evidence", str(results), "--seller", "nobody", "--no-pdf"]).exit_code == 1


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (.ci/run installs it)")
def test_the_pack_prints_to_pdf_in_headless_chromium(results, tmp_path, monkeypatch):
    pytest.importorskip("playwright")
    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    from knockoff.listings.evidence import write_evidence

    pack = write_evidence(results, "shop-1", tmp_path / "pack", None, SAMPLE, pdf=True)
    data = pack.pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page") >= 1 and len(data) > 20_000


def test_without_a_browser_the_pack_is_still_written_and_the_missing_pdf_is_a_warning(results, tmp_path, monkeypatch):
    from knockoff.listings import evidence

    def no_browser(html, pdf):
        raise RuntimeError("no PDF: it needs Playwright (pip install playwright) and Chromium; the HTML and CSV are written")

    monkeypatch.setattr(evidence, "print_pdf", no_browser)
    outcome = CliRunner().invoke(app, ["evidence", str(results), "--seller", "shop-1", "--out", str(tmp_path / "pack")])
    assert outcome.exit_code == 0 and "warning: no PDF" in outcome.output
    assert (tmp_path / "pack" / "evidence-shop-1.html").is_file() and not (tmp_path / "pack" / "evidence-shop-1.pdf").exists()


@pytest.mark.parametrize("text", ["=HYPERLINK(\"x\")", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "＝HYPERLINK(\"x\")", "＋1", "－1", "＠SUM(A1)"])
def test_takedown_cells_that_a_spreadsheet_would_run_are_defused(text):
    from knockoff.listings.evidence import csv_cell

    assert csv_cell(text) == "'" + text and csv_cell("plain " + text) == "plain " + text
