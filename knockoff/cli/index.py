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
        gallery = run_index(config, model, out)
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        fail(error)
    typer.echo(f"gallery {gallery.info.version}: {gallery.info.count} references ({gallery.info.index_factory}) -> {out}")
    if gallery.info.calibration:
        typer.echo(json.dumps(gallery.info.calibration.to_dict()))


@app.command("add")
def index_add(
    sources: Annotated[list[str], typer.Argument(help="Labelled manifests (e.g. data/confirmed/manifest.parquet), folders or globs.")],
    product: Annotated[Optional[str], typer.Option(help="Every photo shows this product (a new brand or product: no retraining needed).")] = None,
    fake: Annotated[bool, typer.Option("--fake", help="With --product: the photos are known fakes, not genuine references.")] = False,
    brand: Annotated[Optional[str], typer.Option(help="With --product: the product's brand.")] = None,
    model: Annotated[Path, typer.Option(help="The model the gallery belongs to.")] = Path("models/knockoff.onnx"),
    gallery: Annotated[Path, typer.Option("--index", help="Gallery folder to extend (rewritten atomically; a running review service picks it up).")] = Path("models/gallery"),
) -> None:
    """Add genuine references or known fakes to a gallery, no retraining needed.

    Confirmed decisions: `knockoff index add data/confirmed/manifest.parquet`. A new product:
    `knockoff index add --product "acme tote" photos/acme-tote/`. Photos already in the
    gallery are skipped; the score calibration is kept.
    """
    from knockoff.data.records import FAKE, GENUINE
    from knockoff.gallery.indexing import add_references

    if (fake or brand) and product is None:
        fail(ValueError("--fake and --brand describe --product"))
    try:
        added = add_references(model, gallery, sources, product, FAKE if fake else GENUINE, brand)
    except (FileNotFoundError, ValueError, TimeoutError) as error:
        fail(error)
    for path, error in added.unreadable[:10]:
        typer.echo(f"  unreadable: {path}: {error}", err=True)
    typer.echo(f"gallery {added.gallery.info.version}: added {added.added} references ({added.already_present} already there, "
               f"{added.unlabelled} without product/label, {len(added.unreadable)} unreadable); {added.gallery.info.count} in all")
