"""A plain-text view of screening results: counts, then the most suspicious listings."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from knockoff.screening.results import output_format

_COLUMNS = ("listing_id", "score", "flagged", "product", "claimed_product", "genuine", "fake", "error")


def read_results(path: Path) -> list[dict]:
    kind = output_format(path)
    if kind == "parquet":
        return pq.read_table(path).to_pylist()
    if kind == "csv":  # CSV has no null: an empty field is one
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    else:
        table = pajson.read_json(path)
    return table.to_pylist()


def summarize(rows: list[dict], top: int = 10) -> str:
    failed = [r for r in rows if r.get("error")]
    scored = sorted((r for r in rows if r.get("score") is not None), key=lambda r: -r["score"])
    flagged = [r for r in scored if r.get("flagged")]
    # every row that shows another product than it claims, judged or not (a copy, a no_match)
    mismatched = [r for r in rows if r.get("product_mismatch")]
    listings = len({r.get("listing_id") or r.get("path") for r in rows})
    no_match = [r for r in rows if r.get("status") == "no_match"]
    unsupported = [r for r in rows if r.get("status") == "unsupported"]
    lines = [
        f"{len(rows)} photos in {listings} listings: {len(flagged)} flagged, {len(scored) - len(flagged)} not flagged, "
        f"{len(failed)} failed, {len(mismatched)} with a product mismatch",
        f"not judged: {len(no_match)} show no catalogued product (no_match), "
        f"{len(unsupported)} have no reference close enough (unsupported: need references)",
        "",
        _table([_view(r) for r in scored[:top]]),
    ]
    if unsupported:
        lines += ["", "unsupported (add references of the product to judge them):"] + [
            f"  {r.get('listing_id') or r.get('path')}: {r.get('status_reason')}" for r in unsupported[:top]]
    if failed:
        lines += ["", "failed:"] + [f"  {r.get('listing_id') or r.get('path')}: {r['error']}" for r in failed[:top]]
    return "\n".join(lines)


def _view(row: dict) -> dict:
    def nearest(key: str) -> str:
        evidence = row.get(key) or []
        if isinstance(evidence, str):  # CSV stores evidence as JSON text
            import json

            evidence = json.loads(evidence)
        return f"{evidence[0]['similarity']:.3f}" if evidence else "-"

    claimed = row.get("claimed_product") or "-"
    if row.get("product_mismatch"):
        claimed += " (!)"
    return {
        "listing_id": str(row.get("listing_id")),
        "score": f"{row['score']:.3f}",
        "flagged": "yes" if row.get("flagged") else "no",
        "product": str(row.get("product")),
        "claimed_product": claimed,
        "genuine": nearest("nearest_genuine"),
        "fake": nearest("nearest_fake"),
        "error": "",
    }


def _table(views: list[dict]) -> str:
    columns = [c for c in _COLUMNS if c != "error"]
    headers = {c: c.replace("_", " ") for c in columns}
    headers.update(genuine="nearest genuine", fake="nearest fake")
    widths = {c: max([len(headers[c])] + [len(v[c]) for v in views]) for c in columns}
    render = lambda values: "  ".join(values[c].ljust(widths[c]) for c in columns).rstrip()  # noqa: E731
    return "\n".join([render(headers), render({c: "-" * widths[c] for c in columns})] + [render(v) for v in views])


def explain(rows: list[dict], photo: str) -> str:
    """One photo's local evidence in words: where it is least like the genuine product, and
    which reference region each part was compared with. `photo`: its listing id, its path,
    or its row number in the results."""
    import json

    chosen = [r for r in rows if photo in (str(r.get("listing_id")), str(r.get("path")))]
    if not chosen and photo.isdigit() and int(photo) < len(rows):
        chosen = [rows[int(photo)]]
    if not chosen:
        raise KeyError(f"no photo {photo!r} in the results (give a listing id, a path or a row number)")
    lines = []
    for row in chosen:
        regions = row.get("regions")
        if isinstance(regions, str):  # CSV stores them as JSON text
            regions = json.loads(regions)
        score = f"score {row['score']:.3f}" if row.get("score") is not None else f"status {row.get('status')}"
        lines.append(f"{row.get('listing_id') or '-'}  {row.get('path')}  ({row.get('product') or 'no product'}, {score}"
                     f"{', flagged' if row.get('flagged') else ''})")
        if not regions:
            why = ("it reached no verdict" if row.get("status") != "scored"
                   else "screened without local evidence (a model or gallery without patch banks, or --no-regions)")
            lines.append(f"  no regions: {why}")
            continue
        lines.append("  regions least like any genuine reference, most unlike first (fractions of the photo: x0,y0-x1,y1):")
        for rank, region in enumerate(regions, 1):
            where = f"{region['x0']:.2f},{region['y0']:.2f}-{region['x1']:.2f},{region['y1']:.2f}"
            there = f"{region['ref_x0']:.2f},{region['ref_y0']:.2f}-{region['ref_x1']:.2f},{region['ref_y1']:.2f}"
            if region["side"] == "fake":
                verdict = "nearer a KNOWN FAKE than any genuine reference"
            else:
                verdict = "best genuine match"
            lines.append(f"  {rank}. {where}  distance {region['distance']:.3f}  {verdict}: {region['reference_path']} at {there}")
    return "\n".join(lines)
