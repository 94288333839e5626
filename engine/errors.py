"""Errors a user can cause. The CLI and the TUI show their message as one sentence, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad profile, missing model, too little feedback).

    The message is one sentence naming the file or value and what to do. ``exit_code`` is what the
    CLI exits with (2 by default, like a usage error).
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    """What a library's exception says, for the brackets of a one-sentence error: its first line without a closing
    full stop (the exception's type when it says nothing)."""
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__
