"""The `knockoff` command. Each subcommand is one pipeline step; heavy imports stay inside
the commands, so `knockoff screen` starts without torch on the screening install."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.params import DEFAULT_PARAMS

app = typer.Typer(
    help="Knockoff: screen marketplace listing photos for counterfeit products.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts name extras like [serve]: plain text, not Rich markup (which would eat them)
    rich_markup_mode=None,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="Pipeline parameters; this command reads its own section.")]


def _fail(error: Exception) -> None:
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


@app.command()
def screen(
    inputs: Annotated[list[str], typer.Argument(help="Folders, glob patterns or manifests (.csv/.parquet/.jsonl with a path or url column; local or s3://, gs:// ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results file: .parquet (default), .csv or .jsonl.")] = Path("results.parquet"),
    model: Annotated[Path, typer.Option(help="Exported ONNX model (fp32, or the --int8 export).")] = Path("models/knockoff.onnx"),
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
    duplicates: Annotated[bool, typer.Option("--duplicates", help="Find reused photos across the run (duplicate_group, reference_copy) when it finishes; costs several times the screening on photos dense in look-alikes.")] = False,
) -> None:
    """Score listing photos for counterfeits (torch-free).

    One row per image: calibrated score, flagged decision, matched product, and the nearest
    genuine references and known fakes as evidence. An unreadable image is a row with
    `error` set; the run goes on. Rows are committed in parts as they come: after an
    interruption, `--resume` screens only what is missing. Run from the repo root, the
    defaults use the model and gallery that `dvc repro` left under models/.
    """
    from knockoff.embedding import DeviceUnavailableError
    from knockoff.listings.duplicates import DuplicateOptions
    from knockoff.screen import ScreenOptions
    from knockoff.screen import screen as run_screen

    options = ScreenOptions(batch_size, workers, threads, device, model_batch=model_batch, rows_per_part=part_rows, resume=resume,
                            duplicates=DuplicateOptions() if duplicates else None)
    try:
        if engine == "local":
            summary = run_screen(inputs, out, model, index, options)
        elif engine == "ray":
            from knockoff.ray_engine import screen_ray

            summary = screen_ray(inputs, out, model, index, options, address=ray_address, actors=actors)
        else:
            raise ValueError(f"unknown engine {engine!r}: choose local or ray")
    except (FileNotFoundError, ValueError, DeviceUnavailableError, ImportError) as error:
        _fail(error)
    except OSError as error:  # a full disk, a quota, a file-size limit while writing
        _fail(OSError(f"could not write the results ({error}). Nothing incomplete is left under {out}; the rows "
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
def listings(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Listings file (Parquet).")] = Path("listings.parquet"),
) -> None:
    """One row per listing: its photos combined (a fake photo makes a fake listing; an
    unsupported one does not make it genuine), its status, score, flag and most
    incriminating photo. Flags are calibrated at listing level to the target precision on
    this run's share of fakes (knockoff/listings/calibration.py). Streams: any crawl size in
    bounded memory."""
    from knockoff.listings import write_listings

    try:
        summary = write_listings(results, out)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(summary.line(out))
    for line in summary.calibration:
        typer.echo(f"  {line}")


@app.command()
def sellers(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen` (with a seller_id column in its manifest).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sellers file (Parquet), highest risk first.")] = Path("sellers.parquet"),
    store: Annotated[Optional[Path], typer.Option(help="The review service's store (knockoff.db): adds analysts' confirmed fakes.")] = None,
    top: Annotated[int, typer.Option(help="How many of the riskiest sellers to print.")] = 10,
) -> None:
    """One row per seller, ranked by risk: the expected counterfeit share of its judged
    listings, shrunk towards the run's base rate (knockoff/listings/sellers.py)."""
    from knockoff.listings import write_sellers

    try:
        table = write_sellers(results, out, store)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"{table.num_rows} sellers -> {out}")
    for row in table.slice(0, top).to_pylist():
        typer.echo(f"  {row['seller_id'] or '(no seller id)'}: risk {row['risk']:.3f}, {row['flagged_listings']} of "
                   f"{row['judged_listings']} judged listings flagged ({row['listings']} listings, "
                   f"{row['confirmed_fakes']} confirmed fakes)")


@app.command()
def evidence(
    results: Annotated[Path, typer.Argument(help="Parquet results file written by `knockoff screen`.")],
    seller: Annotated[str, typer.Option(help="The seller whose flagged and confirmed listings the pack documents.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pack (HTML, PDF, takedown CSV).")] = Path("evidence"),
    store: Annotated[Optional[Path], typer.Option(help="The review service's store (knockoff.db): analysts' decisions, names and notes.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also print the pack to PDF with headless Chromium.")] = True,
) -> None:
    """Write a seller's evidence pack: each flagged or confirmed listing with its url, photos
    beside the nearest genuine references and known fakes, score, threshold, status, reused
    photos and the analyst's decision, with model and gallery versions; as self-contained
    HTML, a PDF of it, and a CSV of listing ids and urls for a takedown form."""
    from knockoff.data import data_root
    from knockoff.listings.evidence import write_evidence

    try:
        pack = write_evidence(results, seller, out, store, data_root(), pdf=pdf)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"{pack.listings} listings -> {pack.html}, {pack.csv}" + (f", {pack.pdf}" if pack.pdf else ""))
    if pack.warning:
        typer.secho(f"warning: {pack.warning}", fg=typer.colors.YELLOW, err=True)


@app.command()
def review(
    results: Annotated[list[Path], typer.Argument(help="Results files from `knockoff screen`, or folders of them.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    image_root: Annotated[Optional[list[Path]], typer.Option(help="Folder photos may be shown from (repeatable; default: the data root and the current folder).")] = None,
    model: Annotated[Path, typer.Option(help="Model for ad-hoc scoring (POST /api/score); reloaded when it changes.")] = Path("models/knockoff.onnx"),
    index: Annotated[Path, typer.Option(help="Gallery for ad-hoc scoring; reloaded when it changes.")] = Path("models/gallery"),
    secure_cookies: Annotated[bool, typer.Option(help="Mark cookies Secure (serve behind HTTPS).")] = False,
) -> None:
    """Start the analyst review service on the given screening results.

    Imports the results into the store under KNOCKOFF_HOME (default ./.knockoff; each file
    once), then serves the queue, item pages and the JSON API. Add users first with
    `knockoff users add`. Needs the [serve] extra.
    """
    import uvicorn

    from knockoff.data import data_root
    from knockoff_serve.app import create_app
    from knockoff_serve.runs import import_results, results_files
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect, initialize

    settings = Settings(model=model, gallery=index, image_roots=tuple(image_root or ()), data_root=data_root(),
                        secure_cookies=secure_cookies)
    initialize(settings.database)
    try:
        files = results_files(results)
        with closing(connect(settings.database)) as connection:
            for path in files:
                run_id, new = import_results(connection, path)
                typer.echo(f"{'imported' if new else 'already imported'} {path} as run {run_id}")
            if connection.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0:
                typer.echo("no users yet: add one with `knockoff users add NAME --role admin`", err=True)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    typer.echo(f"Knockoff review on http://{host}:{port}  (state in {settings.home})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


users_app = typer.Typer(help="Manage the review service's users (stored under KNOCKOFF_HOME).", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="analyst (their own queue) or admin (everyone's decisions).")] = "analyst",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input instead of prompting.")] = False,
) -> None:
    """Add a user; the password is stored as an Argon2id hash."""
    from knockoff_serve.auth import add_user
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect, initialize

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = Settings()
    initialize(settings.database)
    try:
        with closing(connect(settings.database)) as connection:
            add_user(connection, name, role, password)
    except ValueError as error:
        _fail(error)
    typer.echo(f"added {role} {name} ({settings.database})")


@users_app.command("revoke-tokens")
def users_revoke_tokens(name: Annotated[str, typer.Argument(help="The user whose API tokens stop working.")]) -> None:
    """Withdraw every API token of a user (for instance a leaked script token)."""
    from knockoff_serve.auth import revoke_api_tokens

    with _user_store() as connection:
        count = revoke_api_tokens(connection, name)
    typer.echo(f"revoked {count} API token{'s' if count != 1 else ''} of {name}")


@users_app.command("deactivate")
def users_deactivate(name: Annotated[str, typer.Argument(help="The user to keep out.")]) -> None:
    """Keep a user out: their sessions end at once and their API tokens stop working; their
    decisions stay in the audit trail. `knockoff users activate NAME` lets them in again."""
    from knockoff_serve.auth import set_active

    with _user_store() as connection:
        set_active(connection, name, False)
    typer.echo(f"deactivated {name}")


@users_app.command("activate")
def users_activate(name: Annotated[str, typer.Argument(help="The user to let in again.")]) -> None:
    """Let a deactivated user in again."""
    from knockoff_serve.auth import set_active

    with _user_store() as connection:
        set_active(connection, name, True)
    typer.echo(f"activated {name}")


@contextmanager
def _user_store():
    """The review store under KNOCKOFF_HOME; a user who does not exist is a clear error."""
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect, initialize

    settings = Settings()
    initialize(settings.database)
    try:
        with closing(connect(settings.database)) as connection:
            yield connection
    except ValueError as error:
        _fail(error)


@users_app.command("token")
def users_token(name: Annotated[str, typer.Argument(help="The user the token acts as.")]) -> None:
    """Print a new API token for scripts (send it as `Authorization: Bearer TOKEN`)."""
    from knockoff_serve.auth import create_api_token
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect, initialize

    settings = Settings()
    initialize(settings.database)
    try:
        with closing(connect(settings.database)) as connection:
            typer.echo(create_api_token(connection, name))
    except ValueError as error:
        _fail(error)


decisions_app = typer.Typer(help="Analysts' decisions (stored under KNOCKOFF_HOME).", no_args_is_help=True)
app.add_typer(decisions_app, name="decisions")


@decisions_app.command("export")
def decisions_export(
    out: Annotated[Path, typer.Option(help="Folder of the confirmed dataset (manifest + photos).")] = Path("data/confirmed"),
) -> None:
    """Write confirmed counterfeit/genuine decisions to data/confirmed/ for retraining.

    `dvc repro` then trains on them and adds them to the gallery (`prepare` reads
    data/confirmed/manifest.parquet). Track the new version with `dvc add data/confirmed`.
    To use them before retraining: `knockoff index add data/confirmed/manifest.parquet`.
    """
    from knockoff_serve.confirmed import export_confirmed
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect

    settings = Settings()
    if not settings.database.is_file():
        _fail(FileNotFoundError(f"no review store at {settings.database} (set KNOCKOFF_HOME)"))
    with closing(connect(settings.database)) as connection:
        summary = export_confirmed(connection, out)
    typer.echo(summary.line(out))
    for path in summary.missing[:10]:
        typer.echo(f"  unreadable: {path}", err=True)
    _track_with_dvc(out)


def _track_with_dvc(path: Path) -> None:
    """Version a data folder with DVC when run inside a DVC repository."""
    import subprocess

    if not Path(".dvc").is_dir():
        typer.echo(f"not in a DVC repository: version {path} with `dvc add {path}` where it belongs")
        return
    result = subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(path)], capture_output=True, text=True)
    if result.returncode == 0:
        typer.echo(f"tracked with DVC: commit {path}.dvc (and push the data with `dvc push`)")
    else:
        typer.echo(f"`dvc add {path}` failed: {result.stderr.strip() or result.stdout.strip()}", err=True)


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
        _fail(ValueError("give either a CHECKPOINT or --backbone NAME (or --int8 alone to quantize --out)"))
    try:
        if checkpoint is not None or backbone is not None:
            from knockoff.model.export import ExportConfig, run_export

            config = load_config(ExportConfig, "export", params)
            info, difference = run_export(config, out, checkpoint, backbone)
            typer.echo(f"exported {info.kind} {info.name} version {info.version} -> {out} (max |onnx - torch| = {difference:.2e})")
        if int8:
            _export_int8(out, params)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)


def _export_int8(fp32_path: Path, params: Path) -> None:
    from knockoff.embedding import OnnxEmbedder
    from knockoff.params import load_config
    from knockoff.quantize import QuantizeConfig, calibration_images, int8_path, quantize_int8

    config = load_config(QuantizeConfig, "quantize", params)
    if not config.calibration:
        raise ValueError(f"--int8 needs reference photos to calibrate on: set quantize.calibration in {params}")
    size = OnnxEmbedder(fp32_path).info.input_size
    images = calibration_images(config.calibration, config.count, size, config.seed)
    version = quantize_int8(fp32_path, int8_path(fp32_path), images, config)
    typer.echo(f"quantized int8 version {version} ({config.weights} weights, {config.activations} activations, "
               f"{config.method} ranges on {len(images)} reference photos) -> {int8_path(fp32_path)}")


index_app = typer.Typer(
    help="Build the reference gallery for a model and calibrate its score (DVC stage `index`); `index add` extends it.",
    invoke_without_command=True,
)
app.add_typer(index_app, name="index")


@index_app.callback()
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


@index_app.command("add")
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
    from knockoff.indexing import add_references
    from knockoff.records import FAKE, GENUINE

    if (fake or brand) and product is None:
        _fail(ValueError("--fake and --brand describe --product"))
    try:
        added = add_references(model, gallery, sources, product, FAKE if fake else GENUINE, brand)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    for path, error in added.unreadable[:10]:
        typer.echo(f"  unreadable: {path}: {error}", err=True)
    typer.echo(f"gallery {added.gallery.info.version}: added {added.added} references ({added.already_present} already there, "
               f"{added.unlabelled} without product/label, {len(added.unreadable)} unreadable); {added.gallery.info.count} in all")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Fine-tuned ONNX model.")] = Path("models/knockoff.onnx"),
    baseline: Annotated[Optional[Path], typer.Option(help="Frozen pretrained backbone (ONNX) measured in the same run.")] = Path("models/baseline.onnx"),
    int8: Annotated[Optional[Path], typer.Option(help="int8 model (`export --int8`) measured beside fp32, against the fp32 galleries.")] = None,
    index: Annotated[Path, typer.Option(help="Gallery whose scorer settings to use.")] = Path("models/gallery"),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json and plots/.")] = Path("reports"),
    previous: Annotated[str, typer.Option(help="The previous model to compare with: a path, 'git:REV' (the --model file at that revision) or 'none'.")] = "git:HEAD",
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Measure the fine-tuned model against the frozen backbone (DVC stage `evaluate`).

    Sneakers valid against a train gallery: ROC-AUC, average precision, recall at 95%
    precision, product top-1. Grocery val against iconic (then iconic + train) references:
    Recall@1. With --int8, the int8 model's figures beside fp32's. Writes
    reports/metrics.json and ROC/PR plots. The previous model (by default
    the one committed at git HEAD) is measured on the same photos; if the new one is worse
    beyond `evaluate.regression_tolerance`, the command fails (and so the DVC stage).
    """
    import tempfile

    from knockoff.evaluate import EvaluateConfig, RegressionError, model_at_revision
    from knockoff.evaluate import evaluate as run_evaluate
    from knockoff.gallery import read_info
    from knockoff.params import load_config

    models = {"finetuned": model}
    if baseline is not None:
        models["pretrained"] = baseline
    if int8 is not None:
        models["int8"] = int8
    with tempfile.TemporaryDirectory() as scratch:
        previous_model = None
        if previous.startswith("git:"):
            previous_model = model_at_revision(model, previous[4:], Path(scratch) / "previous.onnx")
            if previous_model is None:
                typer.echo(f"no {model} at {previous[4:]}: nothing to compare with", err=True)
        elif previous != "none":
            previous_model = Path(previous)
        try:
            scorer = read_info(index).scorer
            results = run_evaluate(models, load_config(EvaluateConfig, "evaluate", params), scorer, out, previous_model, index)
        except (FileNotFoundError, ValueError, RegressionError) as error:
            _fail(error)
    json.dump(results, sys.stdout, indent=2)
    typer.echo()
