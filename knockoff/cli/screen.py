"""`knockoff screen` and `knockoff show`: score listing photos, and read a run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import fail

app = typer.Typer()


@app.command()
def screen(
    inputs: Annotated[list[str], typer.Argument(help="Folders, glob patterns or manifests (.csv/.parquet/.jsonl with a path or url column; local or s3://, gs:// ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results file: .parquet (default), .csv or .jsonl.")] = Path("results.parquet"),
    model: Annotated[Path, typer.Option(help="Exported ONNX model (fp32, or the --int8 export).")] = Path("models/knockoff.onnx"),
    precision: Annotated[str, typer.Option(help="fp32; int8 (the --int8 export beside the model, twice as fast on a CPU with VNNI; without VNNI it falls back to fp32 and says so); auto (int8 where it pays, silently).")] = "fp32",
    index: Annotated[Path, typer.Option(help="Gallery folder built by `knockoff index` for this model.")] = Path("models/gallery"),
    batch_size: Annotated[int, typer.Option(help="Images decoded, searched, scored and written together (64: measured fastest end to end on 2 cores).")] = 64,
    model_batch: Annotated[Optional[int], typer.Option(help="The most images per onnxruntime run (default: 2 on CPU, where a run then stays in cache; the whole batch on a GPU).")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Image decoding threads (default: one per core).")] = None,
    threads: Annotated[Optional[int], typer.Option(help="onnxruntime threads per model stream (default: one stream per core, one thread each; given: one stream).")] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda (needs the onnxruntime-gpu build: pip install 'knockoff[gpu]').")] = "cpu",
    resume: Annotated[bool, typer.Option("--resume", help="Finish an interrupted run of the same inputs: screen only what is missing.")] = False,
    part_rows: Annotated[int, typer.Option(help="Rows per committed part: the most an interruption can cost.")] = 4096,
    engine: Annotated[str, typer.Option(help="local (this machine), or ray (Ray Data: a local or remote Ray cluster).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (e.g. ray://head:10001, or auto); default: start a local one.")] = None,
    actors: Annotated[Optional[int], typer.Option(help="Ray engine: scoring actors, each holding the model and gallery (default: one per 2 CPUs of the cluster).")] = None,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Exit 0 when the inputs hold no image at all (by default that is an error: a wrong folder or pattern).")] = False,
    duplicates: Annotated[bool, typer.Option("--duplicates", help="Find reused photos across the run (duplicate_group) when it finishes; costs several times the screening on photos dense in look-alikes.")] = False,
    download_deadline: Annotated[Optional[float], typer.Option(help="The longest a photo URL may take to download, in seconds (default 60, or KNOCKOFF_DOWNLOAD_DEADLINE_S); a slower one is an error row.")] = None,
    regions: Annotated[bool, typer.Option("--regions/--no-regions", help="Local evidence for judged photos (regions): where each is least like its product's genuine references, with the reference region it matched. Needs the patch model beside the model and a gallery with patch banks.")] = True,
    copy_check: Annotated[bool, typer.Option("--copy-check/--no-copy-check", help="Check each photo for a copy of a gallery reference (reference_copy): a copy of a known fake is flagged naming it, a copy of a genuine reference is `copy`, never flagged or cleared.")] = True,
) -> None:
    """Score listing photos for counterfeits (torch-free).

    One row per image: calibrated score, flagged decision, matched product, and the nearest
    genuine references and known fakes as evidence. An unreadable image is a row with
    `error` set; the run goes on. Rows are committed in parts as they come: after an
    interruption, `--resume` screens only what is missing. The defaults use the model and
    gallery under models/: KNOCKOFF_MODELS's (a folder holding knockoff.onnx and gallery/), else
    the working folder's, else those of the checkout Knockoff is installed from, so it runs
    from any folder; none of them: the error names every place it looked.
    """
    from knockoff.runtime.cpu import cpu_description
    from knockoff.runtime.precision import choose_model
    from knockoff.runtime.sessions import DeviceUnavailableError
    from knockoff.screening.duplicates import DuplicateOptions
    from knockoff.screening.screen import (
        DEFAULT_GALLERY,
        DEFAULT_MODEL,
        ScreenOptions,
        shipped,
    )
    from knockoff.screening.screen import screen as run_screen

    try:
        model, index = shipped(model, DEFAULT_MODEL), shipped(index, DEFAULT_GALLERY)
        chosen = choose_model(model, precision)
    except (FileNotFoundError, ValueError) as missing:
        fail(missing)
    model = chosen.path
    if chosen.note:
        typer.echo(f"note: {chosen.note} (CPU: {cpu_description()})", err=True)

    if download_deadline is not None:
        from knockoff.images import decode

        if download_deadline <= 0:
            fail(ValueError("--download-deadline must be positive"))
        decode.DOWNLOAD_DEADLINE_S = download_deadline
    options = ScreenOptions(batch_size, workers, threads, device, model_batch=model_batch, rows_per_part=part_rows, resume=resume,
                            duplicates=DuplicateOptions() if duplicates else None, copy_check=copy_check,
                            regions=regions)
    try:
        if engine == "local":
            summary = run_screen(inputs, out, model, index, options)
        elif engine == "ray":
            from knockoff.screening.ray_engine import screen_ray

            summary = screen_ray(inputs, out, model, index, options, address=ray_address, actors=actors)
        else:
            raise ValueError(f"unknown engine {engine!r}: choose local or ray")
    except (FileNotFoundError, ValueError, DeviceUnavailableError, ImportError) as error:
        fail(error)
    except OSError as error:  # a full disk, a quota, a file-size limit while writing
        fail(OSError(f"could not write the results ({error}). Nothing incomplete is left under {out}; the rows "
                      f"committed so far are kept: once there is space, run the same command with --resume to finish."))
    typer.echo(summary.line())
    if summary.screened == 0:
        typer.echo(f"warning: no image in {' '.join(inputs)} (an empty folder, or a pattern that matches nothing?)", err=True)
        if not allow_empty:
            raise typer.Exit(1)


@app.command()
def show(
    results: Annotated[Path, typer.Argument(help="Results file written by `knockoff screen`.")],
    top: Annotated[int, typer.Option(help="How many of the highest-scoring listings to list.")] = 10,
    explain: Annotated[Optional[str], typer.Option("--explain", help="Print one photo's local evidence instead: its regions least like the genuine product, each beside the reference region it matched (a listing id, a path or a row number).")] = None,
) -> None:
    """Print a screening run's counts and its most suspicious listings.

    For each listing: the score, the flag, the matched and claimed product (marked when they
    differ), and the similarity of its nearest genuine reference and nearest known fake.
    """
    from knockoff.screening.report import explain as explain_photo
    from knockoff.screening.report import read_results, summarize

    if not results.is_file():
        fail(FileNotFoundError(f"{results} not found"))
    rows = read_results(results)
    if explain is None:
        typer.echo(summarize(rows, top))
        return
    try:
        typer.echo(explain_photo(rows, explain))
    except KeyError as error:
        fail(ValueError(error.args[0]))
