"""Options shared by engine commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from engine.home import Home

HomeOption = Annotated[
    Optional[str], typer.Option("--home", help="Data directory (default: $TUNELOOP_HOME or the user data dir).")
]
ProfileOption = Annotated[str, typer.Option("--profile", "-p", help="Profile name (see `engine profiles`).")]


def home_of(home: str | None) -> Home:
    return Home.resolve(home)
