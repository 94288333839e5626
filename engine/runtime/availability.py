"""Is a profile's model on this machine? Decided without the network and without importing torch.

Used where a person picks a model (the TUI's profile list) and before a load starts, so that a model
that would be downloaded, or cannot be because the hub is offline, is said at once rather than after
a long silent "loading: tokenizer". The loader (engine.runtime.loading) stays the authority on what
it can load; this is a cheap look, a few ``stat`` calls:

- ``builtin:demo``: always (it is built from text shipped in the repo, in about a second);
- ``pkg:<python package>/<file>.gguf``: the package is importable (``importlib.util.find_spec`` on
  its top-level name: found, not imported);
- a local path (starts with ``/``, ``.``, ``~``, or exists): the folder or ``.gguf`` file exists;
- a hub id: its ``config.json`` (or, for a repo without one, any file of a snapshot) is in the HF
  cache, at the profile's revision when it names one (``huggingface_hub.try_to_load_from_cache``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

DEMO_MODEL = "builtin:demo"
OFFLINE_VALUES = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Availability:
    on_disk: bool
    where: str
    """One phrase: "built in", "package llama_models", "/models/x", "HF cache", "not on disk"."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE is set: a model that is not on disk cannot be downloaded."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in OFFLINE_VALUES


def _in_hf_cache(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:  # pragma: no cover - installed with transformers
        return False
    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    except Exception:  # a malformed id: not something the cache holds
        return False
    if isinstance(found, str):
        return True
    snapshots = Path(cache_dir or HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        return any(any(s.iterdir()) for s in snapshots.iterdir() if s.is_dir())
    except OSError:
        return False


def model_availability(model_id: str, revision: str | None = None,
                       cache_dir: str | Path | None = None) -> Availability:
    """Where ``model_id`` would be loaded from, if it is on disk (see the module docstring)."""
    if model_id == DEMO_MODEL:
        return Availability(True, "built in")
    if model_id.startswith("pkg:"):
        package = model_id[4:].split("/", 1)[0]
        top = package.split(".", 1)[0]
        try:
            found = bool(top) and importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        return Availability(found, f"package {package}" if found else f"package {package} not installed")
    path = Path(model_id).expanduser()
    if model_id.startswith(("/", ".", "~")) or path.exists() or model_id.endswith(".gguf"):
        return Availability(path.exists(), str(path) if path.exists() else f"{path} missing")
    if _in_hf_cache(model_id, revision, cache_dir):
        return Availability(True, "HF cache")
    return Availability(False, "not on disk")


def profile_availability(profile, cache_dir: str | Path | None = None) -> Availability:
    """:func:`model_availability` for a profile's ``[model]`` id and revision."""
    return model_availability(profile.model.id, getattr(profile.model, "revision", None), cache_dir)
