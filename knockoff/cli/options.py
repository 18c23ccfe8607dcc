"""What the command groups share: the --params option, and how a command fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knockoff.params import DEFAULT_PARAMS

ParamsOption = Annotated[Path, typer.Option("--params", help="Pipeline parameters; this command reads its own section.")]

__all__ = ["DEFAULT_PARAMS", "ParamsOption", "fail"]


def fail(error: Exception) -> None:
    """Print the error in red and exit 1: bad input is a message, never a traceback."""
    typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)
