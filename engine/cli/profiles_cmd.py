"""``engine profiles``: list profiles with their model and active adapter."""

from __future__ import annotations

import typer

from engine.cli.common import HomeOption, home_of


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles)


def profiles(home: HomeOption = None) -> None:
    """List built-in and user profiles with their model and active adapter (a table on a terminal;
    piped, one tab-separated line per profile with every name in full)."""
    import sys

    from engine.adapters import promoted_run
    from engine.errors import UserError
    from engine.profiles import load_profile, profile_names

    h = home_of(home)
    header = ("profile", "source", "model", "adapter", "device")
    rows: list[tuple[str, ...]] = []
    problems = []
    for name in profile_names(h):
        try:
            p = load_profile(name, h)
        except UserError as exc:  # listed, marked, and said below: the other profiles still work
            problems.append(str(exc))
            rows.append((name, "unreadable", "(see the error below)", "-", "-"))
            continue
        try:
            adapter = promoted_run(h, p.name) or "base"
        except UserError as exc:
            adapter = f"? ({exc})"
        rows.append((p.name, p.source, p.model.id, adapter, p.model.device))
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(*header, box=None)
        for row in rows:  # cells are Rich markup: a model id or an error like "[reward] ..." must print as written
            table.add_row(*(escape(c) for c in row))
        Console().print(table)
    else:  # piped (a script, grep, a file): full names, never cut to a terminal's width
        for row in (header, *rows):
            typer.echo("\t".join(" ".join(str(c).split()) for c in row))
    for e in problems:
        typer.echo(f"error: {e}", err=True)
    if problems:  # the others are listed (and usable); the exit status still says a file needs fixing
        raise typer.Exit(2)
