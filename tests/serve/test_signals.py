"""A catalogue's signals in the review service: shown in words, decided, exported, refit."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
from knockoff_serve.confirmed import export_confirmed
from knockoff_serve.listings import decide_listing
from knockoff_serve.queue import Viewer
from typer.testing import CliRunner

from knockoff.cli import app as cli
from knockoff.listings.signals import PRICE_BANDS, read_ratios
from tests.serve.conftest import login


def test_listing_and_seller_pages_show_each_signal_in_words(priced, database):
    app, _ = priced
    client, _ = login(app, "ana")
    cheap = database.execute("SELECT * FROM listings WHERE seller_id = 'shop' AND score IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    assert abs(cheap["price_ratio"] - 0.2) < 1e-9 and cheap["price_ratio_lr"] > 3 and cheap["official_reuse"] == "none"
    page = client.get(f"/listings/{cheap['id']}").text
    assert "Evidence beyond the photos" in page and "price 20% of retail:" in page
    assert "more common among counterfeit listings" in page and "every signal weighed" in page
    dealer = database.execute("SELECT * FROM listings WHERE seller_id = 'dealer' ORDER BY id LIMIT 1").fetchone()
    assert "price 100% of retail:" in client.get(f"/listings/{dealer['id']}").text
    seller = client.get("/seller?id=shop&marketplace=").text
    assert "price 20% of retail:" in seller and "every signal weighed: p(counterfeit)" in seller


def test_decided_listings_are_exported_with_their_signals_and_refit_the_ratios(priced, database, users, tmp_path):
    ana = Viewer(users["ana"], "ana", "analyst")
    listings = database.execute("SELECT id, seller_id FROM listings ORDER BY id").fetchall()
    for row in listings:  # the analyst confirms the cheap ones counterfeit, the dealer's genuine
        decide_listing(database, row["id"], ana, "counterfeit" if row["seller_id"] == "shop" else "genuine")
    summary = export_confirmed(database, tmp_path / "confirmed")
    exported = pq.read_table(tmp_path / "confirmed" / "listings.parquet").to_pylist()
    assert summary.listings == len(listings) == len(exported)
    assert {(r["seller_id"], r["label"], round(r["price_ratio"], 2)) for r in exported} == {("shop", "fake", 0.2), ("dealer", "genuine", 1.0)}
    out = tmp_path / "listing-signals.json"
    result = CliRunner().invoke(cli, ["signals", "fit", str(tmp_path / "confirmed" / "listings.parquet"), "--out", str(out), "--fresh"])
    assert result.exit_code == 0, result.output
    fitted = read_ratios(out)
    cheap, retail = (fitted.ratio("price", np.array([PRICE_BANDS.index(b)]))[0] for b in ("under 35%", "95-110%"))
    assert cheap > 1 > retail and fitted.listings == {"fake": 6, "genuine": 6}
    # fit again on the same export: from the prior the file was fit from, so no decision counts twice
    assert CliRunner().invoke(cli, ["signals", "fit", str(tmp_path / "confirmed" / "listings.parquet"), "--out", str(out)]).exit_code == 0
    assert read_ratios(out).ratios == fitted.ratios
    shown = CliRunner().invoke(cli, ["signals", "show", str(out)])
    assert "price under 35%:" in shown.output and "more common among counterfeit listings" in shown.output


def test_signals_fit_refuses_a_table_that_is_not_listings(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"path": ["a.jpg"]}), tmp_path / "photos.parquet")
    result = CliRunner().invoke(cli, ["signals", "fit", str(tmp_path / "photos.parquet"), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 1 and "not a listings table" in result.output and not (tmp_path / "r.json").exists()
