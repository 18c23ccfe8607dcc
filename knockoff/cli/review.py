"""`knockoff review`: the analyst review service on a run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from knockoff.cli.options import fail

app = typer.Typer()


@app.command()
def review(
    results: Annotated[list[Path], typer.Argument(help="Results files from `knockoff screen`, or folders of them.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    image_root: Annotated[Optional[list[Path]], typer.Option(help="Folder photos may be shown from (repeatable; default: the data root and the current folder).")] = None,
    model: Annotated[Path, typer.Option(help="Model for ad-hoc scoring (POST /api/score); reloaded when it changes.")] = Path("models/knockoff.onnx"),
    index: Annotated[Path, typer.Option(help="Gallery to score with: the service works on its own copy under KNOCKOFF_HOME, whose changes (references added, rolled back) an admin approves.")] = Path("models/gallery"),
    edit_gallery_in_place: Annotated[bool, typer.Option("--edit-gallery-in-place", help="Change --index itself, not a copy under KNOCKOFF_HOME.")] = False,
    secure_cookies: Annotated[bool, typer.Option(help="Mark cookies Secure (serve behind HTTPS).")] = False,
) -> None:
    """Start the analyst review service on the given screening results.

    Imports the results into the store under KNOCKOFF_HOME (default ./.knockoff; each file
    once), then serves the queue, item pages and the JSON API. Add users first with
    `knockoff users add`. Needs the [serve] extra.
    """
    import uvicorn
    from knockoff_serve.app import create_app
    from knockoff_serve.runs import import_results, results_files
    from knockoff_serve.settings import Settings
    from knockoff_serve.store import closing, connect, initialize

    from knockoff.data import data_root
    from knockoff.screening.screen import DEFAULT_GALLERY, DEFAULT_MODEL, shipped

    def found(path: Path, default: Path) -> Path:  # the shipped model and gallery from any folder; review runs without
        try:
            return shipped(path, default)
        except FileNotFoundError:
            return path

    model, index = found(model, DEFAULT_MODEL), found(index, DEFAULT_GALLERY)
    settings = Settings(model=model, gallery=index, edit_gallery_in_place=edit_gallery_in_place,
                        image_roots=tuple(image_root or ()), data_root=data_root(),
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
        fail(error)
    typer.echo(f"Knockoff review on http://{host}:{port}  (state in {settings.home})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
