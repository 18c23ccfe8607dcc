"""`knockoff index` and `knockoff index add`: the reference gallery (DVC stage `index`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import DEFAULT_PARAMS, ParamsOption, fail

app = typer.Typer(
    help="Build the reference gallery for a model and calibrate its score (DVC stage `index`); `index add` extends it.",
    invoke_without_command=True,
)


@app.callback()
def index(
    context: typer.Context,
    model: Annotated[Path, typer.Option(help="Exported ONNX model the gallery is for.")] = Path("models/knockoff.onnx"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Gallery folder to write.")] = Path("models/gallery"),
    params: ParamsOption = DEFAULT_PARAMS,
    reference: Annotated[Optional[list[str]], typer.Option(help="Reference source (repeatable); replaces params `index.references`.")] = None,
    calibration: Annotated[Optional[str], typer.Option(help="Labelled validation photos to calibrate on; replaces params `index.calibration`.")] = None,
    factory: Annotated[Optional[str], typer.Option(help="FAISS index_factory string; replaces params `index.factory`.")] = None,
    catalogue: Annotated[Optional[Path], typer.Option(help="The brand's catalogue CSV (README: catalogue), kept with the gallery; replaces params `index.catalogue`.")] = None,
    rates: Annotated[Optional[Path], typer.Option(help="With --catalogue: currency rates CSV (currency, rate).")] = None,
) -> None:
    """Build the reference gallery for a model and calibrate its score (DVC stage `index`).

    Embeds genuine references and known fakes into a FAISS index (type from an
    index_factory string), saves it with its reference table and the model version, and
    fits the score calibration and flag threshold on a labelled validation split.
    `knockoff index add` adds references to an existing gallery.
    """
    if context.invoked_subcommand is not None:
        return
    from dataclasses import replace

    from knockoff.gallery.indexing import IndexConfig
    from knockoff.gallery.indexing import index as run_index
    from knockoff.params import load_config

    try:
        config = load_config(IndexConfig, "index", params)
        overrides = {"references": tuple(reference) if reference else None, "calibration": calibration, "factory": factory}
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        # before the build: a bad catalogue costs nothing; params `index.catalogue` keeps it across `dvc repro`
        products = _read_catalogue(catalogue or (Path(config.catalogue) if config.catalogue else None),
                                   rates or (Path(config.rates) if config.rates else None))
        gallery = run_index(config, model, out)
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        fail(error)
    typer.echo(f"gallery {gallery.info.version}: {gallery.info.count} references ({gallery.info.index_factory}) -> {out}")
    if gallery.info.calibration:
        typer.echo(json.dumps(gallery.info.calibration.to_dict()))
    if products is not None:
        _add_catalogue(model, out, products)


def _read_catalogue(catalogue: Path | None, rates: Path | None):
    from knockoff.data.catalogue import read_catalogue

    if rates is not None and catalogue is None:
        raise ValueError("--rates converts the prices of --catalogue")
    return read_catalogue(catalogue, rates) if catalogue is not None else None


def _add_catalogue(model: Path, gallery: Path, catalogue) -> None:
    from knockoff.gallery.indexing import add_catalogue

    try:
        added = add_catalogue(model, gallery, catalogue)
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        fail(error)
    _report(added)
    stored = [p["product"] for p in added.gallery.info.catalogue["products"]]
    names = [given.product if given.product == kept else f"{given.product} (the gallery's {kept})"
             for given, kept in zip(catalogue.products, stored)]
    typer.echo(f"catalogue {catalogue.source}: {len(names)} products ({', '.join(names)}), kept with the gallery "
               "(set params `index.catalogue` for `dvc repro` to keep it in the galleries it rebuilds)")


def _report(added) -> None:
    for path, error in added.unreadable[:10]:
        typer.echo(f"  unreadable: {path}: {error}", err=True)
    typer.echo(f"gallery {added.gallery.info.version}: added {added.added} references ({added.already_present} already there, "
               f"{added.unlabelled} without product/label, {len(added.unreadable)} unreadable); {added.gallery.info.count} in all")


@app.command("add")
def index_add(
    sources: Annotated[Optional[list[str]], typer.Argument(help="Labelled manifests (e.g. data/confirmed/manifest.parquet), folders or globs.")] = None,
    product: Annotated[Optional[str], typer.Option(help="Every photo shows this product (a new brand or product: no retraining needed).")] = None,
    fake: Annotated[bool, typer.Option("--fake", help="With --product: the photos are known fakes, not genuine references.")] = False,
    brand: Annotated[Optional[str], typer.Option(help="With --product: the product's brand.")] = None,
    model: Annotated[Path, typer.Option(help="The model the gallery belongs to.")] = Path("models/knockoff.onnx"),
    gallery: Annotated[Path, typer.Option("--index", help="Gallery folder to extend (rewritten atomically; a running review service picks it up).")] = Path("models/gallery"),
    catalogue: Annotated[Optional[Path], typer.Option(help="The brand's catalogue CSV: its official photos join as genuine references marked official, and it is kept with the gallery (README: catalogue).")] = None,
    rates: Annotated[Optional[Path], typer.Option(help="With --catalogue: currency rates CSV (currency, rate); never fetched.")] = None,
) -> None:
    """Add genuine references or known fakes to a gallery, no retraining needed.

    Confirmed decisions: `knockoff index add data/confirmed/manifest.parquet`. A new product:
    `knockoff index add --product "acme tote" photos/acme-tote/`. The brand's catalogue:
    `knockoff index add --catalogue catalogue.csv`. Photos already in the gallery are
    skipped; the score calibration is kept.
    """
    from knockoff.data.records import FAKE, GENUINE
    from knockoff.gallery.indexing import add_references

    if (fake or brand) and product is None:
        fail(ValueError("--fake and --brand describe --product"))
    if not sources and catalogue is None:
        fail(ValueError("name photos to add, or --catalogue FILE"))
    try:
        products = _read_catalogue(catalogue, rates)
        if sources:
            _report(add_references(model, gallery, sources, product, FAKE if fake else GENUINE, brand))
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        fail(error)
    if products is not None:
        _add_catalogue(model, gallery, products)
