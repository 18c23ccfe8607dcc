"""The `knockoff` command: one module per command group, each a typer sub-app.

Every command is one pipeline step or one task of an analyst's; heavy imports stay inside
the commands, so `knockoff screen` starts without torch on the screening install. Groups
added without a name put their commands at the top level (`knockoff screen`); named ones
are sub-commands (`knockoff users add`).
"""

from __future__ import annotations

import typer

from knockoff.cli import decisions, evaluate, index, listings, model, review, screen, signals, users

app = typer.Typer(
    help="Knockoff: screen marketplace listing photos for counterfeit products.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help texts name extras like [serve]: plain text, not Rich markup (which would eat them)
    rich_markup_mode=None,
)
# In the order `knockoff --help` lists them: top-level commands first, then the groups.
for group in (screen, listings, review, model, evaluate):
    app.add_typer(group.app)
app.add_typer(users.app, name="users")
app.add_typer(decisions.app, name="decisions")
app.add_typer(index.app, name="index")
app.add_typer(signals.app, name="signals")

__all__ = ["app"]
