"""Evidence packs: what a takedown notice, a habitual-seller report or a customs record needs.

For one seller, every listing that is flagged or that an analyst confirmed counterfeit: its
identifiers and url, its photos beside the nearest genuine references and known fakes with
their similarities, the score, threshold and status, where the same photo recurs in other
listings, the analyst's decision (who, when, the note), and the model and gallery versions.
Written as one self-contained HTML file (photos inlined), a PDF of it printed by headless
Chromium, and a CSV of listing ids and urls for a marketplace's takedown form.
"""

from __future__ import annotations

import base64
import csv
import html
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import knockoff.wording as wording
from knockoff.images.decode import ImageLoadError, jpeg_region, jpeg_thumbnail, placeholder_jpeg
from knockoff.listings.calibration import read_listing_calibration
from knockoff.listings.sellers import RiskSummary, listings_risk
from knockoff.listings.signals import read_listing_context, signal_words, signals_apply
from knockoff.listings.verdicts import listing_verdicts

THUMBNAIL_PX = 240
REGION_PX = 200  # each region of local evidence, enlarged
REGIONS_SHOWN = 3  # per photo, beside their reference regions
TAKEDOWN_COLUMNS = ("listing_id", "listing_url", "marketplace", "title", "price", "currency", "score", "flagged", "decision")


@dataclass(frozen=True)
class EvidencePack:
    html: Path
    csv: Path
    pdf: Path | None
    listings: int
    warning: str | None = None  # why there is no PDF when one was asked for


@dataclass(frozen=True)
class Decision:
    decision: str
    analyst: str
    decided_at: str
    note: str | None


def write_evidence(results: Path, seller: str, out_dir: Path, store: Path | None = None, data_root: Path = Path("."),
                   pdf: bool = True, marketplace: str | None = None) -> EvidencePack:
    """The seller's evidence pack under `out_dir` (evidence-SELLER.html/.pdf/-takedown.csv).
    A seller is its id on its marketplace: a seller id found on several marketplaces needs
    `marketplace`, and only that marketplace's listings and decisions enter the pack."""
    photos = pq.read_table(results, filters=[("seller_id", "=", seller)])
    if photos.num_rows == 0:
        raise ValueError(f"no listings of seller {seller!r} in {results}")
    photos = _on_marketplace(photos, seller, marketplace)
    decisions = _decisions(store, photos) if store else {}
    context = read_listing_context(pq.read_schema(results).metadata or {})
    table = listing_verdicts(photos, read_listing_calibration(results), context)
    verdicts = table.to_pylist()
    confirmed = {listing for (listing, _), d in decisions.items() if d.decision == "counterfeit"}
    chosen = sorted((v for v in verdicts if v["flagged"] or v["listing_id"] in confirmed),
                    key=lambda v: -(v["probability"] if v["probability"] is not None else v["score"] if v["score"] is not None else -1))
    rows = photos.to_pylist()
    chosen_ids = {v["listing_id"] for v in chosen}
    reuse = _reuse(results, [r for r in rows if r["listing_id"] in chosen_ids], seller)
    metadata = {k.decode(): v.decode() for k, v in (pq.read_schema(results).metadata or {}).items() if k.startswith(b"knockoff.")}
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "evidence-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in seller)
    html_path, csv_path = out_dir / f"{stem}.html", out_dir / f"{stem}-takedown.csv"
    risk = listings_risk(table)
    html_path.write_text(render(seller, chosen, rows, decisions, reuse, metadata, data_root, len(verdicts), risk),
                         encoding="utf-8")
    write_takedown_csv(csv_path, chosen, decisions)
    pdf_path, warning = None, None
    if pdf:
        try:
            pdf_path = print_pdf(html_path, out_dir / f"{stem}.pdf")
        except RuntimeError as missing:  # no browser here: the HTML and CSV stand alone
            warning = str(missing)
    return EvidencePack(html_path, csv_path, pdf_path, len(chosen), warning)


def _on_marketplace(photos: pa.Table, seller: str, marketplace: str | None) -> pa.Table:
    """The seller's photos on one marketplace (the only one, or the one named)."""
    markets = photos.column("marketplace") if "marketplace" in photos.column_names else pa.nulls(photos.num_rows, pa.string())
    found = sorted({m or "" for m in markets.to_pylist()})
    if marketplace is None:
        if len(found) > 1:
            raise ValueError(f"seller {seller!r} sells on {len(found)} marketplaces ({', '.join(m or '(none)' for m in found)}): "
                             f"name one (--marketplace), each is a seller of its own")
        return photos
    if marketplace not in found:
        raise ValueError(f"no listings of seller {seller!r} on marketplace {marketplace!r} (it sells on {', '.join(found)})")
    return photos.filter(pc.equal(pc.fill_null(markets, ""), marketplace))


def _decisions(store: Path, photos: pa.Table) -> dict[tuple[str, str], Decision]:
    """(listing_id, path) -> the analyst's decision in force, with the note they gave: on this
    seller's items of this marketplace only (another seller's L1001 is another listing)."""
    listings = sorted({x for x in photos.column("listing_id").to_pylist() if x})
    seller = photos.column("seller_id")[0].as_py()
    marketplace = photos.column("marketplace")[0].as_py() if "marketplace" in photos.column_names else None
    found: dict[tuple[str, str], Decision] = {}
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
        for start in range(0, len(listings), 500):
            chunk = listings[start:start + 500]
            rows = connection.execute(
                f"""SELECT i.listing_id, i.path, i.decision, i.decided_at, u.name,
                       (SELECT d.note FROM decisions d WHERE d.item_id = i.id AND d.action = 'decide' ORDER BY d.id DESC LIMIT 1)
                    FROM items i JOIN users u ON u.id = i.decided_by
                    WHERE i.decision IS NOT NULL AND i.seller_id = ? AND COALESCE(i.marketplace, '') = ?
                      AND i.listing_id IN ({','.join('?' * len(chunk))})""", [seller, marketplace or "", *chunk]).fetchall()
            for listing, path, decision, decided_at, name, note in rows:
                found[(listing, path)] = Decision(decision, name, decided_at, note)
    return found


def _reuse(results: Path, photos: list[dict], seller: str) -> dict[str, tuple[int, int]]:
    """path -> (other listings, other sellers) showing the same photo (the same file or URL, or
    a copy of it in the run's duplicate_group), in one streamed pass."""
    group_of = {p["path"]: p.get("duplicate_group") for p in photos}
    by_group: dict[int, set[str]] = {}
    for path, group in group_of.items():
        if group is not None:
            by_group.setdefault(group, set()).add(path)
    own = {(p["path"], p["listing_id"]) for p in photos}
    listings: dict[str, set] = {p: set() for p in group_of}
    sellers: dict[str, set] = {p: set() for p in group_of}
    columns = ["path", "listing_id", "seller_id"] + (["duplicate_group"] if by_group else [])
    wanted_paths = pa.array(sorted(group_of), pa.string())
    wanted_groups = pa.array(sorted(by_group), pa.int64())
    for batch in pq.ParquetFile(results).iter_batches(columns=columns, batch_size=65_536):
        hits = pc.is_in(batch.column(0), value_set=wanted_paths)
        if by_group:  # only rows showing one of these photos are looked at row by row
            hits = pc.or_(hits, pc.fill_null(pc.is_in(batch.column(3), value_set=wanted_groups), False))
        batch = batch.filter(hits)
        for path, listing, other, *group in zip(*(batch.column(i).to_pylist() for i in range(len(columns)))):
            for photo in ({path} & listings.keys()) | by_group.get(group[0] if group else None, set()):
                if (photo, listing) not in own:
                    listings[photo].add(listing)
                    if other != seller:
                        sellers[photo].add(other)
    return {p: (len(listings[p]), len(sellers[p])) for p in group_of}


def write_takedown_csv(path: Path, chosen: list[dict], decisions: dict[tuple[str, str], Decision]) -> None:
    by_listing = {listing: d.decision for (listing, _), d in decisions.items()}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(TAKEDOWN_COLUMNS)
        for listing in chosen:
            values = {**listing, "decision": by_listing.get(listing["listing_id"], "")}
            writer.writerow([csv_cell(values.get(name)) for name in TAKEDOWN_COLUMNS])


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not execute: text starting with = + - @ (or a tab or
    carriage return), in their full-width forms too (＝ ＋ － ＠, which spreadsheets read as
    the same), is prefixed with an apostrophe (OWASP's advice on CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    first = unicodedata.normalize("NFKC", text[:1])
    return "'" + text if first[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render(seller: str, chosen: list[dict], rows: list[dict], decisions: dict[tuple[str, str], Decision],
           reuse: dict[str, tuple[int, int]], metadata: dict[str, str], data_root: Path, listing_count: int,
           risk: RiskSummary | None = None) -> str:
    e = html.escape
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sections = [_listing_section(v, [r for r in rows if (r["listing_id"] or r["path"]) == v["listing_id"]], decisions,
                                 reuse, data_root) for v in chosen]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evidence pack: seller {e(seller)}</title>
<style>
body {{ font: 13px/1.45 system-ui, sans-serif; color: #1d2733; margin: 24px; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 16px; margin: 0 0 6px; }}
.meta, .muted {{ color: #5b6b7c; }} .listing {{ border: 1px solid #d6dde5; border-radius: 8px; padding: 12px; margin: 14px 0; page-break-inside: avoid; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }}
.photos {{ display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px; }} figure {{ margin: 0; width: 170px; }}
figure img {{ width: 170px; height: 170px; object-fit: cover; border-radius: 6px; border: 3px solid #ccd; }}
figure.fake img {{ border-color: #c0392b; }} figure.genuine img {{ border-color: #27ae60; }} figure.listing img {{ border-color: #2c3e50; }}
figure.region {{ width: 354px; }} figure.region .pair {{ display: flex; gap: 4px; }}
figure.region img {{ width: 170px; height: 170px; object-fit: contain; background: #f4f4f4; border-color: #2c3e50; }}
figure.region.fake img + img {{ border-color: #c0392b; }} figure.region.genuine img + img {{ border-color: #27ae60; }}
figcaption {{ font-size: 11px; color: #5b6b7c; word-break: break-all; }} .flag {{ color: #c0392b; font-weight: 600; }}
</style></head><body>
<h1>Evidence pack: seller {e(seller)}</h1>
<div class="meta">Generated {e(generated)} by Knockoff · model {e(metadata.get('knockoff.model_version', '?'))} ·
gallery {e(metadata.get('knockoff.index_version', '?'))} · {len(chosen)} of {listing_count} listings flagged or confirmed counterfeit</div>
{_risk_line(risk) if risk else ""}
<p class="muted">Each listing: its photos (dark border) beside the nearest genuine references (green) and known fakes (red) of
the product it was judged against, with their similarity (the cosine of the two photos' embeddings as a percentage;
100% is the same photo, 0% or less "unlike"). The score is the calibrated probability of a counterfeit of its
most incriminating photo; the threshold is the listing threshold its product and number of judged photos were held to
in this run, set for the target precision at the run's estimated share of fakes.</p>
{''.join(sections) or '<p>No listing of this seller is flagged or confirmed counterfeit.</p>'}
</body></html>
"""


def _risk_line(risk: RiskSummary) -> str:
    return (f"<p id='seller-risk'><b>Seller: {html.escape(risk.words())}</b>. Each judged listing's chance of being "
            "counterfeit at the run's share of fakes, added up; the interval holds the true count 9 times in 10 if those "
            "chances are right.</p>")


def _score_line(listing: dict) -> str:
    threshold = listing["threshold"]
    line = f"{listing['score']:.3f} (listing threshold {threshold:.3f}" if threshold != float("inf") else \
        f"{listing['score']:.3f} (no listing threshold reaches the target precision"
    if listing.get("expected_precision") is not None:
        line += f", precision at least {listing['expected_precision']:.2f} at {listing['prevalence']:.3f} fakes"
    return line + ")"


def _listing_section(listing: dict, photos: list[dict], decisions: dict[tuple[str, str], Decision],
                     reuse: dict[str, tuple[int, int]], data_root: Path) -> str:
    e = html.escape
    facts = [("Listing", listing["listing_id"]), ("URL", listing.get("listing_url")), ("Marketplace", listing.get("marketplace")),
             ("Title", listing.get("title")),
             ("Price", f"{listing['price']:.2f} {listing.get('currency') or ''}" if listing.get("price") is not None else None),
             ("Status", wording.status(listing["status"])),
             ("Score", _score_line(listing) if listing.get("score") is not None else None),
             ("Product", listing.get("product")),
             ("Signals", "; ".join(signal_words(listing)) if signals_apply(listing) else None),
             ("Combined", f"p(counterfeit) {wording.chance(listing['probability'])}, every signal weighed"
              if listing.get("probability") is not None and signals_apply(listing) else None)]
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in facts if v)
    figures, notes = [], []
    for photo in photos:
        decision = decisions.get((photo["listing_id"], photo["path"]))
        if decision:
            notes.append(f"<div>Analyst decision: <b>{e(decision.decision)}</b> by {e(decision.analyst)} at {e(decision.decided_at or '')}"
                         + (f" — “{e(decision.note)}”" if decision.note else "") + "</div>")
        others, sellers = reuse.get(photo["path"], (0, 0))
        if others:
            notes.append(f"<div class='flag'>Photo {e(Path(photo['path']).name)} also appears in {others} other listing(s) "
                         f"of {sellers} other seller(s).</div>")
        copied = photo.get("reference_copy")
        score = f"{photo['score']:.3f}" if photo.get("score") is not None else wording.status(photo["status"])
        figures.append(_figure(photo["path"], f"listing photo · {score}", "listing", Path(".")))
        if copied:  # said once, in the colour of what it means, and the copied file shown once
            genuine = photo.get("status") == "copy"
            name = e(Path(copied).name)
            notes.append(f"<div class='muted'>Caution: photo {e(Path(photo['path']).name)} copies the genuine reference {name}: "
                         "a reused brand photo, which proves nothing about the goods sold.</div>" if genuine else
                         f"<div class='flag'>Evidence against the listing: photo {e(Path(photo['path']).name)} copies the known "
                         f"fake {name}, the photo of a confirmed counterfeit.</div>")
            figures.append(_figure(copied, f"the {'genuine reference' if genuine else 'known fake'} it copies",
                                   "genuine" if genuine else "fake", data_root))
        for group, kind in (("nearest_genuine", "genuine"), ("nearest_fake", "fake")):
            for reference in [r for r in (photo.get(group) or []) if r["path"] != copied][:2]:
                figures.append(_figure(reference["path"], f"{kind} reference · {wording.similarity(reference['similarity'])}",
                                       kind, data_root))
        figures += _region_pairs(photo, data_root)
    flag = "<span class='flag'>flagged</span>" if listing["flagged"] else ""
    return (f"<section class='listing'><h2>{e(listing['listing_id'])} {flag}</h2><table>{rows}</table>"
            f"{''.join(dict.fromkeys(notes))}<div class='photos'>{''.join(figures)}</div></section>")


def _region_pairs(photo: dict, data_root: Path, count: int = REGIONS_SHOWN) -> list[str]:
    """The photo's top regions of local evidence, each cropped and enlarged beside the region of
    the reference it matched: where the photo is least like the genuine product."""
    pairs = []
    for rank, region in enumerate((photo.get("regions") or [])[:count], 1):
        side = region["side"]
        where = "nearer a known fake than any genuine reference" if side == "fake" else "its closest genuine match"
        listing_crop = _region_uri(Path(photo["path"]), (region["x0"], region["y0"], region["x1"], region["y1"]))
        reference = Path(region["reference_path"])
        reference = reference if reference.is_absolute() else data_root / reference
        reference_crop = _region_uri(reference, (region["ref_x0"], region["ref_y0"], region["ref_x1"], region["ref_y1"]))
        pairs.append(
            f"<figure class='region {side}'><div class='pair'><img src='{listing_crop}' alt='region {rank} of the listing photo'>"
            f"<img src='{reference_crop}' alt='the {side} reference region it matched'></div>"
            f"<figcaption>region {rank} · {wording.distance(region['distance'])}<br>"
            f"beside {html.escape(where)}: {html.escape(reference.name)}</figcaption></figure>")
    return pairs


def _region_uri(path: Path, box: tuple[float, float, float, float]) -> str:
    try:
        data = jpeg_region(path.read_bytes(), box, REGION_PX, path.name, quality=85)
    except (ImageLoadError, OSError) as refused:
        data = placeholder_jpeg(str(refused), REGION_PX)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def _figure(path: str, caption: str, kind: str, root: Path) -> str:
    source = Path(path) if Path(path).is_absolute() else root / path
    return (f"<figure class='{kind}'><img src='{_data_uri(source)}' alt=''><figcaption>{html.escape(caption)}<br>"
            f"{html.escape(Path(path).name)}</figcaption></figure>")


def _data_uri(path: Path) -> str:
    """The photo inlined as a JPEG thumbnail, so the file stands alone (decoded behind the
    screening's guard); a placeholder saying why when it is unreadable or over the ceiling."""
    try:
        data = jpeg_thumbnail(path.read_bytes(), THUMBNAIL_PX, path.name, quality=80)
    except (ImageLoadError, OSError) as refused:
        data = placeholder_jpeg(str(refused), THUMBNAIL_PX)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def print_pdf(html_path: Path, pdf_path: Path) -> Path:
    """The HTML printed to PDF by headless Chromium (Playwright; Debian's chromium or
    KNOCKOFF_CHROMIUM). Raises RuntimeError when no browser can be started."""
    import os
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as missing:
        raise RuntimeError("no PDF: it needs Playwright (pip install playwright) and Chromium; the HTML and CSV are written") from missing
    chromium = os.environ.get("KNOCKOFF_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=chromium if Path(chromium).exists() else None,
                                                 args=["--no-sandbox", "--disable-gpu", "--no-first-run"], headless=True)
        except Exception as failed:  # Playwright's own error type: no browser binary, cannot start
            raise RuntimeError(f"no PDF: Chromium could not be started ({failed}); the HTML and CSV are written") from failed
        try:
            page = browser.new_page()
            page.goto(html_path.resolve().as_uri())
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        finally:
            browser.close()
    return pdf_path
