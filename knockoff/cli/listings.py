"""`knockoff listings`, `sellers` and `evidence`: a run's photos as listings, sellers and evidence packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import fail

app = typer.Typer()
SignalsOption = Annotated[Optional[Path], typer.Option(
    help="Signal ratios to weigh price and reused official photos with, instead of those the results carry "
         "(`knockoff signals fit`).")]


def _ratios(path: Path | None):
    from knockoff.listings.signals import read_ratios

    return read_ratios(path) if path is not None else None


@app.command()
def listings(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Listings file (Parquet).")] = Path("listings.parquet"),
    signals: SignalsOption = None,
) -> None:
    """One row per listing: its photos combined (a fake photo makes a fake listing; an
    unsupported one does not make it genuine), its status, score, flag and most
    incriminating photo. Flags are calibrated at listing level to the target precision on
    this run's share of fakes (knockoff/listings/calibration.py). Streams: any crawl size in
    bounded memory."""
    from knockoff.listings import write_listings

    try:
        summary = write_listings(results, out, ratios=_ratios(signals))
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    typer.echo(summary.line(out))
    for line in summary.calibration:
        typer.echo(f"  {line}")


@app.command()
def sellers(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen` (with a seller_id column in its manifest).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sellers file (Parquet), highest risk first.")] = Path("sellers.parquet"),
    store: Annotated[Optional[Path], typer.Option(help="The review service's store (knockoff.db): adds analysts' confirmed fakes.")] = None,
    top: Annotated[int, typer.Option(help="How many of the riskiest sellers to print.")] = 10,
    signals: SignalsOption = None,
) -> None:
    """One row per seller, ranked by risk: the expected counterfeit share of its judged
    listings, shrunk towards the run's base rate (knockoff/listings/sellers.py)."""
    from knockoff.listings import write_sellers
    from knockoff.listings.sellers import summary_of

    try:
        table = write_sellers(results, out, store, ratios=_ratios(signals))
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    typer.echo(f"{table.num_rows} sellers -> {out}")
    for row in table.slice(0, top).to_pylist():
        typer.echo(f"  {row['seller_id'] or '(no seller id)'}: {summary_of(row).words()} ({row['listings']} listings, "
                   f"{row['confirmed_fakes']} confirmed fakes; ranking score {row['risk']:.3f})")


@app.command()
def evidence(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen`.")],
    seller: Annotated[str, typer.Option(help="The seller whose flagged and confirmed listings the pack documents.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pack (HTML, PDF, takedown CSV).")] = Path("evidence"),
    store: Annotated[Optional[Path], typer.Option(help="The review service's store (knockoff.db): analysts' decisions, names and notes.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print the pack to PDF with headless Chromium.")] = True,
    marketplace: Annotated[Optional[str], typer.Option(help="The seller's marketplace, when its id is found on several (each is a seller of its own).")] = None,
) -> None:
    """Write a seller's evidence pack: each flagged or confirmed listing with its url, photos
    beside the nearest genuine references and known fakes, score, threshold, status, reused
    photos and the analyst's decision, with model and gallery versions; as self-contained
    HTML, a PDF of it, and a CSV of listing ids and urls for a takedown form."""
    from knockoff.data import data_root
    from knockoff.listings.evidence import write_evidence

    try:
        pack = write_evidence(results, seller, out, store, data_root(), pdf=pdf, marketplace=marketplace)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    typer.echo(f"{pack.listings} listings -> {pack.html}, {pack.csv}" + (f", {pack.pdf}" if pack.pdf else ""))
    if pack.warning:
        typer.secho(f"warning: {pack.warning}", fg=typer.colors.YELLOW, err=True)
