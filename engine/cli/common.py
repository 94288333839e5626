"""Options shared by engine commands, and the one place a command turns ``--profile`` into a Profile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from engine.home import Home
from engine.profiles import DEFAULT_PROFILE, FALLBACK_PROFILE

if TYPE_CHECKING:
    from engine.profiles import Profile

HomeOption = Annotated[
    Optional[str], typer.Option("--home", help="Data directory (default: $TUNELOOP_HOME or the user data dir).")
]
ProfileOption = Annotated[Optional[str], typer.Option(
    "--profile", "-p",
    help=f"Profile name, see `engine profiles` (default: default_profile in the home's config.toml, else "
         f"{DEFAULT_PROFILE}, or {FALLBACK_PROFILE} when its model package is not installed).")]


def setting_help(table: str, key: str) -> str:
    """Help for a flag that overrides setting ``[table] key``, from the settings schema (engine.settings):
    what it does, what it accepts, and that the profile's value is the default."""
    from engine.settings import TABLES, allowed

    cls: Any = TABLES[table]
    doc = " ".join((cls.__pydantic_fields__[key].description or "").split()).replace("``", "")
    return f"{doc} Default: the profile's [{table}] {key}; {allowed(cls, key)}."


def home_of(home: str | None) -> Home:
    """The home a command works in; a path that exists but is not a folder (a regular file, a device) is one
    sentence (exit 2), never an empty home's zeros: the person's data is somewhere else."""
    from engine.errors import UserError

    h = Home.resolve(home)
    if h.root.exists() and not h.root.is_dir():
        raise UserError(f"the tuneloop home {h.root} is not a folder; point --home or $TUNELOOP_HOME at the folder "
                        "that holds your tuneloop data.")
    return h


def profile_of(profile: str | None, home: Home) -> "Profile":
    """The profile a command works on: ``--profile``, else the home's default. Every command goes through
    here, so a mistyped name is refused the same way everywhere (no profile named 'dmeo' (available: ...),
    exit 2) before anything is read or written under it."""
    from engine.profiles import default_profile_name, load_profile

    return load_profile(profile or default_profile_name(home), home)


def check_input_file(path: Path, what: str) -> Path:
    """Refuse (one sentence) an input file that is missing or not a regular file: a FIFO would block forever and
    a device read forever, as ``engine import`` refuses them."""
    import os
    import stat

    from engine.errors import UserError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {(exc.strerror or str(exc)).lower()}.") from None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    if not regular:
        raise UserError(f"{what} {path} is not a regular file (a pipe, device or folder); pass a file on disk.")
    return path


def parse_guard(path: Path, read):
    """``read(path)``, with JSON nested past Python's recursion limit turned into one sentence naming the file."""
    from engine.errors import UserError

    try:
        return read(path)
    except RecursionError:
        raise UserError(f"{path} holds JSON nested too deeply to read; fix that file.") from None
