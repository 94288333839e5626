"""Write training rows as TRL-format JSONL (what ``datasets.load_dataset("json", ...)`` reads), and language
feedback in its own documented shape (``critique``: engine.feedback.language.CRITIQUE_FORMAT)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from engine.errors import UserError
from engine.feedback.language import CRITIQUE_FORMAT
from engine.feedback.replay import State
from engine.feedback.rows import Row, critique_rows, rows_for
from engine.safe_files import write_private


def rows_jsonl(rows: list[Row]) -> bytes:
    """One row's ``data`` per line; provenance stays out of the file."""
    return "".join(json.dumps(r.data, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def check_out_file(out: Path) -> Path:
    """Refuse (one sentence) an ``--out`` that exists and is not a regular file: a device (``/dev/full``), a FIFO,
    a folder or a symbolic link is never replaced by the export's new file."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a pipe" if stat.S_ISFIFO(st.st_mode) else "a device or other special file")
        raise UserError(f"{out} is {kind}, not a regular file; export writes only to a new or regular file, so "
                        "choose another --out (nothing written).")
    return out


def export_rows(state: State, fmt: str, out: Path, profile: str = "") -> int:
    """Write the ``fmt`` rows of ``state`` to ``out`` (atomically, mode 0600); return the count.

    Refuses to write an empty file (the datasets library cannot load one): a UserError says what
    feedback the format needs.
    """
    if fmt == CRITIQUE_FORMAT:
        rows = critique_rows(state)
    else:
        rows = rows_for(state, fmt)
    if not rows:
        need = {
            CRITIQUE_FORMAT: "critique a reply (v in the chat) or dislike one with a comment",
            "sft": "like, edit or pick some replies",
            "preference": "edit replies, pick among regenerations, or like one sibling and dislike another",
            "unpaired": "like or dislike some replies",
        }[fmt]
        who = f"profile {profile!r}" if profile else "the feedback log"
        raise UserError(f"{who} has no {fmt} rows yet: {need} first (nothing written to {out}).")
    check_out_file(Path(out))
    try:
        write_private(Path(out), rows_jsonl(rows))
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}.") from None
    return len(rows)
