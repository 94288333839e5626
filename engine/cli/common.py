"""Options shared by engine commands, and the one place a command turns ``--profile`` into a Profile."""

from __future__ import annotations

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
    return Home.resolve(home)


def profile_of(profile: str | None, home: Home) -> "Profile":
    """The profile a command works on: ``--profile``, else the home's default. Every command goes through
    here, so a mistyped name is refused the same way everywhere (no profile named 'dmeo' (available: ...),
    exit 2) before anything is read or written under it."""
    from engine.profiles import default_profile_name, load_profile

    return load_profile(profile or default_profile_name(home), home)
