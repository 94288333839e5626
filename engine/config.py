"""``home/config.toml``, declared once: ``default_profile`` (every command), ``[keys]`` and ``[ui]`` (the TUI).

Example::

    default_profile = "demo"      # the profile a command uses without --profile

    [keys]
    "chat.like" = "plus"          # binding id = key (comma-separated for several keys)
    "chat.compare" = "ctrl+k"

    [ui]
    sidebar = true                # show the conversation list at start
    theme = "textual-dark"        # any Textual theme name

:func:`load_config` reads the file from the home without following a link (``engine.safe_files.read_bytes``: a
``config.toml`` that is a link, a FIFO or a device is refused with one sentence naming it) and validates it
into a :class:`HomeConfig` (pydantic, strict types). A malformed file is one UserError sentence naming the
file, the key and what it accepts. Keys this version does not know are kept, not refused, so an old or newer
config keeps working (:meth:`HomeConfig.unknown_keys`; the TUI shows them as warnings, as it does unknown
binding ids). This module must not import torch or transformers.
"""

from __future__ import annotations

import tomllib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import UserError
from engine.home import Home
from engine.safe_files import read_bytes

_STRICT = ConfigDict(strict=True, extra="allow", frozen=True, use_attribute_docstrings=True)


class UiTable(BaseModel):
    """``[ui]``: how the TUI looks at start."""

    model_config = _STRICT
    sidebar: bool = Field(True, json_schema_extra={"allowed": "true or false"})
    """Show the conversation list at start (ctrl+b toggles it)."""
    theme: str | None = Field(None, json_schema_extra={"allowed": "a string (a Textual theme name)"})
    """A Textual theme name; unset keeps Textual's default."""


class HomeConfig(BaseModel):
    """The whole of ``home/config.toml``; a missing file is all defaults."""

    model_config = _STRICT
    default_profile: str | None = Field(None, pattern=r"\S", json_schema_extra={"allowed": "a non-empty string"})
    """The profile a command uses without ``--profile`` (unset: engine.profiles.DEFAULT_PROFILE)."""
    keys: dict[str, str] = Field(default_factory=dict, json_schema_extra={
        "allowed": 'a table mapping binding ids to key strings, e.g. "chat.like" = "plus"'})
    """TUI binding id -> key string (comma-separated for several keys), applied with ``App.set_keymap``."""
    ui: UiTable = Field(default_factory=UiTable, json_schema_extra={"allowed": "a table ([ui])"})
    """The TUI's display settings."""

    @staticmethod
    def known_keys() -> list[str]:
        """Every key this version reads, as written in the file's terms (``ui.sidebar``)."""
        return [*(k for k in HomeConfig.model_fields if k != "ui"), *(f"ui.{k}" for k in UiTable.model_fields)]

    def unknown_keys(self) -> list[str]:
        """Keys of the file this version does not know (``ui.sidbar``), in file order."""
        return [*(self.model_extra or {}), *(f"ui.{k}" for k in self.ui.model_extra or {})]


def load_config(home: Home | None) -> HomeConfig:
    """``home/config.toml`` (all defaults when there is none), read without following any link."""
    if home is None:
        return HomeConfig()
    path = home.config_path
    try:
        raw = read_bytes(path, home)  # LinkRefused (one sentence naming it) for a link, a FIFO or a device
    except (FileNotFoundError, NotADirectoryError):
        return HomeConfig()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({(exc.strerror or str(exc)).lower()}).") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc}); fix or delete it.") from None
    try:
        return HomeConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(_sentence(path, exc, data)) from None


def _sentence(path, exc: ValidationError, data: dict[str, Any]) -> str:
    """One sentence for the first problem: the key, what it accepts (declared on the field), the value."""
    loc = [str(part) for part in exc.errors()[0]["loc"]]
    model: type[BaseModel] = HomeConfig
    names: list[str] = []
    value: Any = data
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            break  # inside [keys]: the whole table's rule
        names.append(part)
        value = value.get(part) if isinstance(value, dict) else None
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        allowed = str(extra.get("allowed", "valid"))
        annotation = field.annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        break
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return f"{path}: key '{'.'.join(names)}' must be {allowed}, not {shown}."
