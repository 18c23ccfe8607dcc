"""`knockoff decisions export`: analysts' decisions as a dataset for retraining."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from knockoff.cli.options import fail

app = typer.Typer(help="Analysts' decisions (stored under KNOCKOFF_HOME).", no_args_is_help=True)


@app.command("export")
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
        fail(FileNotFoundError(f"no review store at {settings.database} (set KNOCKOFF_HOME)"))
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
