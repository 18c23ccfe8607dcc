"""`knockoff signals fit` and `show`: the likelihood ratios of a listing's price and reused brand photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import fail

app = typer.Typer(help="Listing signals beyond the photos (price, reused official photos): their likelihood ratios.",
                  no_args_is_help=True)
DEFAULT_RATIOS = Path("models/listing-signals.json")


@app.command("fit")
def fit(
    listings: Annotated[list[Path], typer.Argument(help="Labelled listings (Parquet): data/confirmed/listings.parquet from "
                                                        "`knockoff decisions export`, or `knockoff listings` of a labelled manifest's results.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ratios file to write (screening carries the one beside the gallery).")] = DEFAULT_RATIOS,
    prior: Annotated[Optional[Path], typer.Option(help="Ratios to start from, as a file states them (a file you write states your "
                                                       "prior). Default: the prior the --out file was itself fit from (so a "
                                                       "new export of all decisions counts none twice), else every ratio 1.")] = None,
    strength: Annotated[Optional[float], typer.Option(help="How many listings per class the prior weighs (default: the prior's own).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Start from every ratio 1, whatever --out holds.")] = False,
) -> None:
    """Fit the signals' likelihood ratios on labelled listings, from a prior: per band, the
    share of fakes among its listings, shrunk towards the prior's (knockoff/listings/signals.py).
    Give it every decision so far (`knockoff decisions export` writes them all): each fit
    starts again from the same prior."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from knockoff.listings.signals import SIGNALS, SignalRatios, labelled_listings, read_ratios

    try:
        start = (SignalRatios.neutral() if fresh or (prior is None and not out.is_file())
                 else read_ratios(prior) if prior is not None else read_ratios(out).base())
        tables = [_labelled_table(pq.read_table(path), path) for path in listings]
        bands, fake, unjudged = labelled_listings(pa.concat_tables(tables, promote_options="permissive"))
    except (FileNotFoundError, ValueError, OSError) as error:
        fail(error)
    if not len(fake):
        fail(ValueError("no labelled listing (label fake or genuine) to fit on"))
    names = ", ".join(str(path) for path in listings)
    fitted = start.refit(bands, fake, names, strength, unjudged)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(fitted.to_json())
    partial.replace(out)
    typer.echo(f"{int(fake.sum())} counterfeit and {int((~fake).sum())} genuine listings -> {out}")
    for signal, names_of_bands in SIGNALS.items():
        before, after = (ratios.ratio(signal, np.arange(len(names_of_bands))) for ratios in (start, fitted))
        for band, (old, new) in enumerate(zip(before, after)):
            typer.echo(f"  {signal} {names_of_bands[band]}: {old:.2f} -> {new:.2f}")


def _labelled_table(table, path: Path):
    needed = {"label", "status", "price_ratio", "official_reuse"}
    missing = sorted(needed - set(table.column_names))
    if missing:
        raise ValueError(f"{path}: not a listings table (missing {', '.join(missing)}): "
                         "use `knockoff listings` output or `knockoff decisions export`'s listings.parquet")
    return table.select(sorted(needed))


@app.command("show")
def show(ratios: Annotated[Path, typer.Argument(help="Ratios file.")] = DEFAULT_RATIOS) -> None:
    """Each band's likelihood ratio in words."""
    import numpy as np

    from knockoff.listings.signals import SIGNALS, read_ratios, strength_words

    try:
        fitted = read_ratios(ratios)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    typer.echo(f"fit on {fitted.fitted_on}: {fitted.listings['fake']} counterfeit, {fitted.listings['genuine']} genuine listings "
               f"(prior weighs {fitted.strength:g} per class)")
    for signal, names in SIGNALS.items():
        for band, ratio in zip(names, fitted.ratio(signal, np.arange(len(names)))):
            typer.echo(f"  {signal} {band}: {strength_words(float(ratio))}")
    if fitted.unjudged_prior is not None:
        typer.echo(f"  listings with no photo judged: {fitted.unjudged_prior:.1%} counterfeit ({fitted.unjudged_listings} seen)")
