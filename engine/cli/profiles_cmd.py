"""``engine profiles``: list profiles with their model and active adapter."""

from __future__ import annotations

import typer

from engine.cli.common import HomeOption, home_of


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles)


def profiles(home: HomeOption = None) -> None:
    """List built-in and user profiles with their model and active adapter."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine.adapters import promoted_run
    from engine.errors import UserError
    from engine.profiles import list_profiles

    h = home_of(home)
    table = Table("profile", "source", "model", "adapter", "device", box=None)
    errors = []
    for p in list_profiles(h):
        if isinstance(p, UserError):
            errors.append(str(p))
            continue
        try:
            adapter = promoted_run(h, p.name) or "base"
        except UserError as exc:
            adapter = f"? ({exc})"
        # cells are Rich markup: a model id or an error like "[reward] ..." must print as written
        table.add_row(*(escape(c) for c in (p.name, p.source, p.model.id, adapter, p.model.device)))
    Console().print(table)
    for e in errors:
        typer.echo(f"error: {e}", err=True)
    if errors:
        raise typer.Exit(2)
