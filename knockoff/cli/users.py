"""`knockoff users ...`: the review service's users."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Annotated

import typer

from knockoff.cli.options import fail

app = typer.Typer(help="Manage the review service's users (stored under KNOCKOFF_HOME).", no_args_is_help=True)


@app.command("add")
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
        fail(error)
    typer.echo(f"added {role} {name} ({settings.database})")


@app.command("revoke-tokens")
def users_revoke_tokens(name: Annotated[str, typer.Argument(help="The user whose API tokens stop working.")]) -> None:
    """Withdraw every API token of a user (for instance a leaked script token)."""
    from knockoff_serve.auth import revoke_api_tokens

    with _user_store() as connection:
        count = revoke_api_tokens(connection, name)
    typer.echo(f"revoked {count} API token{'s' if count != 1 else ''} of {name}")


@app.command("deactivate")
def users_deactivate(name: Annotated[str, typer.Argument(help="The user to keep out.")]) -> None:
    """Keep a user out: their sessions end at once and their API tokens stop working; their
    decisions stay in the audit trail. `knockoff users activate NAME` lets them in again."""
    from knockoff_serve.auth import set_active

    with _user_store() as connection:
        set_active(connection, name, False)
    typer.echo(f"deactivated {name}")


@app.command("activate")
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
        fail(error)


@app.command("token")
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
        fail(error)
