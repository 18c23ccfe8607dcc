"""`knockoff prepare`, `train` and `export`: the pipeline's stages up to an ONNX model (DVC
stages `prepare`, `train`, `export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import DEFAULT_PARAMS, ParamsOption, fail

app = typer.Typer()


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
    from knockoff.data.prepare import PrepareConfig
    from knockoff.data.prepare import prepare as run_prepare
    from knockoff.params import load_config

    try:
        summary = run_prepare(load_config(PrepareConfig, "prepare", params), data_root(), out)
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    for name, counts in summary.items():
        typer.echo(f"{name}: {counts['images']} images, {counts['unreadable']} unreadable")


@app.command()
def groups(
    params: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[Path, typer.Option(help="Photograph groups (Parquet: path, group, sha1).")] = Path("data/groups.parquet"),
    report: Annotated[Path, typer.Option(help="Group counts per source (JSON).")] = Path("reports/groups.json"),
) -> None:
    """Group the prepared photos by photograph (DVC stage `groups`).

    A photo and its copies (rotated, mirrored, cropped, re-coloured) form one group, so that
    training, epoch selection, calibration and evaluation never hold copies of one shot on
    both sides. Candidates from frozen ImageNet features, verified on the pixels. Needs the
    [train] extra.
    """
    import json

    from knockoff.data import data_root, portable_path
    from knockoff.data.groups import GroupsConfig, groups_report, photograph_groups, write_groups
    from knockoff.data.prepare import read_prepared_with_hashes
    from knockoff.model.pretrained_features import pretrained_features
    from knockoff.params import load_config

    try:
        config = load_config(GroupsConfig, "groups", params)
        records, sha1 = read_prepared_with_hashes([Path(m) for m in config.manifests])
    except (FileNotFoundError, ValueError) as error:
        fail(error)
    features, mirrored, _ = pretrained_features(records, config.backbone, workers=config.workers)
    found = photograph_groups([r.path for r in records], features, [mirrored], config.options)
    write_groups(found, [portable_path(r.path, data_root()) for r in records], sha1, out)
    labels = [r.known_class for r in records]
    summary = groups_report([r.source or "" for r in records], labels, found.group, found.pairs, found.copies)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    typer.echo(f"{summary['photos']} photos in {summary['groups']} photograph groups ({found.copies} copy pairs of "
               f"{found.pairs} candidates) -> {out}")
    for name, counts in summary["sources"].items():
        typer.echo(f"  {name}: {counts['photos']} photos, {counts['groups']} groups, "
                   f"{counts['photos_copying_another_source']} copy a photo of another source")


@app.command()
def train(
    params: ParamsOption = DEFAULT_PARAMS,
    out: Annotated[Path, typer.Option(help="Checkpoint to write (the best epoch).")] = Path("models/checkpoint.pt"),
) -> None:
    """Fine-tune the embedder (DVC stage `train`; the same as `python train.py`).

    Metric learning over product x authenticity classes, validated every epoch by screening
    the validation split; the best epoch's checkpoint is kept. Needs the [train] extra.
    """
    from knockoff.model.training import TrainConfig
    from knockoff.model.training import train as run_train
    from knockoff.params import load_config

    run_train(load_config(TrainConfig, "train", params), out)


@app.command()
def export(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="Checkpoint from training. Omit it with --backbone to export the frozen pretrained backbone.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="ONNX file to write.")] = Path("models/knockoff.onnx"),
    backbone: Annotated[Optional[str], typer.Option(help="Export this timm backbone with its pretrained weights and no head (the baseline).")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="Also write a statically quantized int8 model (<out>.int8.onnx), calibrated on reference photos. Alone: quantize the existing --out model (no torch needed).")] = False,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Export a model to ONNX and check it against torch (DVC stage `export`).

    The graph takes uint8 RGB images (N, H, W, 3) and returns L2-normalised embeddings;
    the batch axis is dynamic and model name, input size, embedding size and version are in
    its metadata. The export fails if ONNX and torch differ by more than the tolerance.
    With --int8, the fp32 model is also quantized (QDQ, ranges calibrated on the reference
    photos in params `quantize`); it searches the same galleries.
    """
    from knockoff.params import load_config

    if checkpoint is not None and backbone is not None or (checkpoint is None and backbone is None and not int8):
        fail(ValueError("give either a CHECKPOINT or --backbone NAME (or --int8 alone to quantize --out)"))
    try:
        if checkpoint is not None or backbone is not None:
            from knockoff.model.export import ExportConfig, run_export

            config = load_config(ExportConfig, "export", params)
            info, difference = run_export(config, out, checkpoint, backbone)
            typer.echo(f"exported {info.kind} {info.name} version {info.version} -> {out} (max |onnx - torch| = {difference:.2e})")
        if int8:
            _export_int8(out, params)
    except (FileNotFoundError, ValueError) as error:
        fail(error)


def _export_int8(fp32_path: Path, params: Path) -> None:
    from knockoff.params import load_config
    from knockoff.runtime.embedding import OnnxEmbedder
    from knockoff.runtime.patches import patches_path
    from knockoff.runtime.quantize import QuantizeConfig, calibration_images, int8_path, quantize_int8

    config = load_config(QuantizeConfig, "quantize", params)
    if not config.calibration:
        raise ValueError(f"--int8 needs reference photos to calibrate on: set quantize.calibration in {params}")
    size = OnnxEmbedder(fp32_path).info.input_size
    images = calibration_images(config.calibration, config.count, size, config.seed)
    version = quantize_int8(fp32_path, int8_path(fp32_path), images, config)
    typer.echo(f"quantized int8 version {version} ({config.weights} weights, {config.activations} activations, "
               f"{config.method} ranges on {len(images)} reference photos) -> {int8_path(fp32_path)}")
    patches = patches_path(fp32_path)
    if patches.is_file():  # local evidence's model: as costly as the main one per judged photo, quantized alike
        quantized = int8_path(fp32_path).with_name(int8_path(fp32_path).name.removesuffix(".onnx") + ".patches.onnx")
        patch_version = quantize_int8(patches, quantized, images, config)
        typer.echo(f"quantized int8 patch model {patch_version} -> {quantized}")
