"""TUI settings from home/config.toml: ``[keys]`` remaps binding ids, ``[ui]`` holds display settings.

Example::

    [keys]
    "chat.like" = "plus"          # binding id = key (comma-separated for several keys)
    "chat.compare" = "ctrl+k"

    [ui]
    sidebar = true                # show the conversation list at start
    theme = "textual-dark"        # any Textual theme name

A malformed file raises a UserError naming it; unknown binding ids are ignored with a warning
(listed by :func:`load_ui_config`) rather than refused, so an old config keeps working.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from rich.markup import escape

from engine.errors import UserError
from engine.home import Home


@dataclass
class UiConfig:
    keys: dict[str, str] = field(default_factory=dict)
    """Binding id -> key string, applied with ``App.set_keymap``."""
    sidebar: bool = True
    """Show the conversation sidebar at start (ctrl+b toggles it)."""
    theme: str | None = None
    """A Textual theme name; None keeps Textual's default."""
    warnings: list[str] = field(default_factory=list)


def load_ui_config(home: Home, known_ids: set[str] | None = None) -> UiConfig:
    path = home.config_path
    if not path.is_file():
        return UiConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); fix or delete it.") from None
    cfg = UiConfig()
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise UserError(f"{path}: [keys] must map binding ids to key strings, e.g. \"chat.like\" = \"plus\".")
    for binding_id, key in keys.items():
        if known_ids is not None and binding_id not in known_ids:
            # shown with App.notify, which reads Textual markup: escaped so "[keys]" is not eaten as a tag
            cfg.warnings.append(escape(f"{path}: unknown binding id {binding_id!r} in [keys] (see the help screen, F1)."))
            continue
        cfg.keys[binding_id] = key
    ui = data.get("ui", {})
    if not isinstance(ui, dict):
        raise UserError(f"{path}: 'ui' must be a table ([ui]).")
    if "sidebar" in ui:
        if not isinstance(ui["sidebar"], bool):
            raise UserError(f"{path}: key 'ui.sidebar' must be true or false.")
        cfg.sidebar = ui["sidebar"]
    if "theme" in ui:
        if not isinstance(ui["theme"], str):
            raise UserError(f"{path}: key 'ui.theme' must be a string.")
        cfg.theme = ui["theme"]
    return cfg
