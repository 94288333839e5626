"""``engine export``, ``engine import`` and ``engine stats``: the feedback log from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.cli.common import HomeOption, ProfileOption, home_of, profile_of


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("stats")(stats)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)


def export(
    format: Annotated[str, typer.Option("--format", "-f", help=(
        "sft, preference or unpaired (TRL formats), or critique (language feedback: prompt, original, critique, "
        "revision)."))],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    profile: ProfileOption = None,
    home: HomeOption = None,
) -> None:
    """Write the profile's feedback as TRL training rows, or its language feedback (JSONL)."""
    from engine.errors import UserError
    from engine.feedback import FeedbackLog, replay
    from engine.feedback.export import check_out_file, export_rows
    from engine.feedback.language import CRITIQUE_FORMAT
    from engine.feedback.rows import FORMATS

    h = home_of(home)
    profile = profile_of(profile, h).name
    if format not in (*FORMATS, CRITIQUE_FORMAT):
        raise UserError(f"unknown --format {format!r}: use sft, preference, unpaired or critique.")
    check_out_file(out)  # a device or a FIFO at --out is refused before anything is read
    result = FeedbackLog(h, profile).read()
    state = replay(result)
    _warn(result.warnings() + state.warnings())
    n = export_rows(state, format, out, profile)
    typer.echo(f"wrote {n} {format} row{'s' if n != 1 else ''} to {out}")


def import_(
    file: Annotated[Path, typer.Argument(help=(
        "JSONL: TRL preference, sft (messages) or unpaired rows, or critique rows (engine export -f critique)."))],
    profile: ProfileOption = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="auto (from the first row), preference, sft, unpaired or critique.")
    ] = "auto",
    again: Annotated[
        bool, typer.Option("--again", help="Import a file even though the same bytes were imported before.")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Add rows from a TRL dataset file to the profile's feedback log (all or nothing: rows become visible
    only when the whole file is in; a stopped import is ignored and can simply be run again)."""
    from engine.feedback import FeedbackLog
    from engine.feedback.import_rows import import_file

    h = home_of(home)
    profile = profile_of(profile, h).name
    result = import_file(FeedbackLog(h, profile), file, format, again=again)
    msg = f"imported {result.rows} {result.format} row{'s' if result.rows != 1 else ''} from {file.name} into {profile}"
    if result.skipped:
        msg += f" ({result.skipped} skipped: chosen and rejected identical)"
    typer.echo(msg)


def stats(
    profile: ProfileOption = None,
    home: HomeOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """How much feedback the profile has, in total and since the last training run."""
    from engine.feedback.stats import COUNT_KEYS, ROW_KEYS, feedback_stats

    h = home_of(home)
    s = feedback_stats(h, profile_of(profile, h).name)
    _warn(s["warnings"])
    if json_out:
        import json

        typer.echo(json.dumps(s, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    run = s["last_run"]
    since = f"since {run['run_id']}" if run else "since last run (none yet)"
    table = Table("", "total", since, box=None)
    for key in COUNT_KEYS + ROW_KEYS:
        table.add_row(key.replace("_", " "), str(s["total"][key]), str(s["since_last_run"][key]))
    Console().print(table)
