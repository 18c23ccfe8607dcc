"""The `knockoff` command. Each subcommand is one pipeline step; heavy imports stay inside
the commands, so `knockoff screen` starts without torch on the screening install."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.params import DEFAULT_PARAMS

app = typer.Typer(
    help="Knockoff: screen marketplace listing photos for counterfeit products.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="Pipeline parameters; this command reads its own section.")]


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def screen(
    inputs: Annotated[list[str], typer.Argument(help="Folders, glob patterns or manifests (.csv/.parquet/.jsonl with a path or url column).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results file: .parquet (default), .csv or .jsonl.")] = Path("results.parquet"),
    model: Annotated[Path, typer.Option(help="Exported ONNX model.")] = Path("models/knockoff.onnx"),
    index: Annotated[Path, typer.Option(help="Gallery folder built by `knockoff index` for this model.")] = Path("models/gallery"),
    batch_size: Annotated[int, typer.Option(help="Images per inference batch.")] = 32,
    workers: Annotated[int, typer.Option(help="Image decoding threads.")] = 2,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime threads (default: all cores).")] = None,
) -> None:
    """Score listing photos for counterfeits (torch-free).

    One row per image: calibrated score, flagged decision, matched product, and the nearest
    genuine references and known fakes as evidence. An unreadable image is a row with
    `error` set; the run goes on. Run from the repo root, the defaults use the model and
    gallery that `dvc repro` left under models/.
    """
    from knockoff.screen import ScreenOptions
    from knockoff.screen import screen as run_screen

    try:
        summary = run_screen(inputs, out, model, index, ScreenOptions(batch_size, workers, threads))
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(summary.line())


@app.command()
def show(
    results: Annotated[Path, typer.Argument(help="Results file written by `knockoff screen`.")],
    top: Annotated[int, typer.Option(help="How many of the highest-scoring listings to list.")] = 10,
) -> None:
    """Print a screening run's counts and its most suspicious listings.

    For each listing: the score, the flag, the matched and claimed product (marked when they
    differ), and the similarity of its nearest genuine reference and nearest known fake.
    """
    from knockoff.report import read_results, summarize

    if not results.is_file():
        _fail(FileNotFoundError(f"{results} not found"))
    typer.echo(summarize(read_results(results), top))


@app.command()
def prepare(
    params: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[Path, typer.Option(help="Folder for the prepared manifests.")] = Path("data/prepared"),
) -> None:
    """Turn datasets into normalised manifests (DVC stage `prepare`).

    Reads the sources in params `prepare.sources` under the data root (KNOCKOFF_DATA) and
    writes one Parquet manifest each, with content hashes and a decode check.
    """
    from knockoff.data import data_root
    from knockoff.params import load_config
    from knockoff.prepare import PrepareConfig
    from knockoff.prepare import prepare as run_prepare

    try:
        summary = run_prepare(load_config(PrepareConfig, "prepare", params), data_root(), out)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    for name, counts in summary.items():
        typer.echo(f"{name}: {counts['images']} images, {counts['unreadable']} unreadable")


@app.command()
def train(
    params: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[Path, typer.Option(help="Checkpoint to write (the best epoch).")] = Path("models/checkpoint.pt"),
) -> None:
    """Fine-tune the embedder (DVC stage `train`; the same as `python train.py`).

    Metric learning over product x authenticity classes, validated every epoch by screening
    the validation split; the best epoch's checkpoint is kept. Needs the [train] extra.
    """
    from knockoff.params import load_config
    from knockoff.training import TrainConfig
    from knockoff.training import train as run_train

    run_train(load_config(TrainConfig, "train", params), out)


@app.command()
def export(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="Checkpoint from training. Omit it with --backbone to export the frozen pretrained backbone.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")] = Path("models/knockoff.onnx"),
    backbone: Annotated[Optional[str], typer.Option(help="Export this timm backbone with its pretrained weights and no head (the baseline).")] = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Export a model to ONNX and check it against torch (DVC stage `export`).

    The graph takes uint8 RGB images (N, H, W, 3) and returns L2-normalised embeddings;
    the batch axis is dynamic and model name, input size, embedding size and version are in
    its metadata. The export fails if ONNX and torch differ by more than the tolerance.
    """
    from knockoff.model.export import ExportConfig, run_export
    from knockoff.params import load_config

    if (checkpoint is None) == (backbone is None):
        _fail(ValueError("give either a CHECKPOINT or --backbone NAME"))
    try:
        info, difference = run_export(load_config(ExportConfig, "export", params), out, checkpoint, backbone)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"exported {info.kind} {info.name} version {info.version} -> {out} (max |onnx - torch| = {difference:.2e})")


@app.command()
def index(
    model: Annotated[Path, typer.Argument(help="Exported ONNX model the gallery is for.")] = Path("models/knockoff.onnx"),
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
    """
    from dataclasses import replace

    from knockoff.indexing import IndexConfig
    from knockoff.indexing import index as run_index
    from knockoff.params import load_config

    try:
        config = load_config(IndexConfig, "index", params)
        overrides = {"references": tuple(reference) if reference else None, "calibration": calibration, "factory": factory}
        config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
        gallery = run_index(config, model, out)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"gallery {gallery.info.version}: {gallery.info.count} references ({gallery.info.index_factory}) -> {out}")
    if gallery.info.calibration:
        typer.echo(json.dumps(gallery.info.calibration.to_dict()))


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Fine-tuned ONNX model.")] = Path("models/knockoff.onnx"),
    baseline: Annotated[Optional[Path], typer.Option(help="Frozen pretrained backbone (ONNX) measured in the same run.")] = Path("models/baseline.onnx"),
    index: Annotated[Path, typer.Option(help="Gallery whose scorer settings to use.")] = Path("models/gallery"),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and plots/.")] = Path("reports"),
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Measure the fine-tuned model against the frozen backbone (DVC stage `evaluate`).

    Sneakers valid against a train gallery: ROC-AUC, average precision, recall at 95%
    precision, product top-1. Grocery val against iconic (then iconic + train) references:
    Recall@1. Writes reports/metrics.json and ROC/PR plots.
    """
    from knockoff.evaluate import EvaluateConfig
    from knockoff.evaluate import evaluate as run_evaluate
    from knockoff.gallery import read_info
    from knockoff.params import load_config

    models = {"finetuned": model}
    if baseline is not None:
        models["pretrained"] = baseline
    try:
        scorer = read_info(index).scorer
        results = run_evaluate(models, load_config(EvaluateConfig, "evaluate", params), scorer, out)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    json.dump(results, sys.stdout, indent=2)
    typer.echo()
