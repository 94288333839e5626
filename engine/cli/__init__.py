"""The ``engine`` command line (typer). Each command group lives in its own module and registers
itself here; heavy libraries are imported inside the commands, never at import time."""

from __future__ import annotations

import errno
import sys

import typer

from engine.errors import UserError

app = typer.Typer(
    name="engine",
    help="tuneloop engine: profiles, feedback, generation and training from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts are plain text: "[reward] epochs" and "[keys]" name TOML tables and must print as written.
    rich_markup_mode=None,
)

# Command modules; each defines register(app). Listed once so adding a group touches one line.
_COMMAND_MODULES = ("profiles_cmd", "feedback_cmd", "model_cmd", "train_cmd", "reward_cmd", "serve_cmd",
                    "export_cmd")


def _register_all() -> None:
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"engine.cli.{name}").register(app)


@app.callback()
def _root() -> None:
    """tuneloop engine: profiles, feedback, generation and training from the command line."""


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: a UserError prints one sentence and exits 2, no traceback."""
    import os

    # Files the libraries write for us (Trainer checkpoints, PEFT adapter configs) are as private
    # as the ones engine.safe_files writes itself, whatever the user's umask.
    os.umask(0o077)
    try:
        app(args=argv, prog_name="engine")
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # backstop: an O_NOFOLLOW open met a link planted in the home
            typer.echo(f"error: {exc.filename or 'a file'} is a symbolic link; tuneloop never follows links inside "
                       "its home (one could point at any of your files), so remove it and run again.", err=True)
            sys.exit(2)
        # Backstop for a full disk anywhere (writing the pointer, a report...): one sentence, no traceback.
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: the disk is full{where}; free some space and run the command again.", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
