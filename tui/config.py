"""The TUI's view of home/config.toml: ``[keys]`` remaps binding ids, ``[ui]`` holds display settings.

The file itself is declared and read once, in ``engine.config`` (a pydantic model, read from the home
without following a link). Here: which remaps apply, and the warnings to show. Unknown binding ids and
unknown keys are ignored with a warning rather than refused, so an old config keeps working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rich.markup import escape

from engine.config import UiTable, load_config
from engine.errors import UserError
from engine.home import Home
from engine.safe_files import ensure_dir


@dataclass
class UiConfig:
    keys: dict[str, str] = field(default_factory=dict)
    """Binding id -> key string (the known ids of ``[keys]``), applied with ``App.set_keymap``."""
    table: UiTable = field(default_factory=UiTable)
    """``[ui]`` as read (engine.config.UiTable)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def sidebar(self) -> bool:
        return self.table.sidebar

    @property
    def theme(self) -> str | None:
        return self.table.theme


def load_ui_config(home: Home, known_ids: set[str] | None = None) -> UiConfig:
    config = load_config(home)  # a UserError naming the file (and the key) when it is malformed or a link
    path = home.config_path
    # shown with App.notify, which reads Textual markup: escaped so "[keys]" is not eaten as a tag
    cfg = UiConfig(table=config.ui)
    for key in config.unknown_keys():
        known = ", ".join(config.known_keys())
        cfg.warnings.append(escape(f"{path}: unknown key {key!r} is ignored (known: {known})."))
    for binding_id, key in config.keys.items():
        if known_ids is not None and binding_id not in known_ids:
            cfg.warnings.append(escape(f"{path}: unknown binding id {binding_id!r} in [keys] (see the help screen, F1)."))
            continue
        cfg.keys[binding_id] = key
    return cfg


def home_write_problem(home: Home) -> str | None:
    """One sentence if the home folder cannot be written (then nothing can be saved), else None."""
    try:
        ensure_dir(home.root)
        writable = os.access(home.root, os.W_OK)
        reason = "permission denied"
    except OSError as exc:
        writable, reason = False, exc.strerror or str(exc)
    except UserError:  # engine.safe_files' own sentence for a folder it cannot create or write in
        writable, reason = False, "it is not a folder you can write in"
    if writable:
        return None
    return (f"The home folder {home.root} cannot be written ({reason}): nothing you send or judge can be "
            "saved. Start with --home DIR (or set TUNELOOP_HOME) to a folder you can write.")
