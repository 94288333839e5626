"""Which adapter a profile uses: the promoted pointer, switched atomically, with history for rollback.

``home/runs/<profile>/promoted.json`` holds ``{"run_id": str | null, "history": [...]}``; it is
replaced by one rename, so a crash mid-promotion leaves the old adapter in use. No torch here.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from engine.errors import UserError
from engine.home import Home, check_name, write_private

ADAPTER_SUBDIR = "adapter"  # run_dir/adapter holds the standard PEFT files of a finished run


def promoted_file(home: Home, profile: str) -> Path:
    return home.runs_dir(profile) / "promoted.json"


def _read(home: Home, profile: str) -> dict:
    path = promoted_file(home, profile)
    try:
        with os.fdopen(home.open(path), "rb") as f:  # no link followed (LinkRefused names it)
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return {"run_id": None, "history": []}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is corrupt; delete it to go back to the base model.") from None
    data.setdefault("history", [])
    return data


def promoted_run(home: Home, profile: str) -> str | None:
    """The run id of the adapter the profile uses, or None for the base model."""
    return _read(home, profile).get("run_id")


def adapter_path(home: Home, profile: str, run_id: str) -> Path:
    """``runs/<profile>/<run_id>/adapter``; refused if a link makes it point outside that run folder."""
    run_dir = home.run_dir(profile, run_id)
    path = run_dir / ADAPTER_SUBDIR
    if run_dir.resolve().parent != home.runs_dir(profile).resolve() or path.resolve().parent != run_dir.resolve():
        raise UserError(f"{path} links outside {home.runs_dir(profile)}; tuneloop only uses adapters inside it.")
    return path


def run_ids(home: Home, profile: str) -> list[str]:
    """Run ids that have a finished adapter, oldest first (run ids sort by time)."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    return sorted(p.parent.parent.name for p in root.glob(f"*/{ADAPTER_SUBDIR}/adapter_config.json"))


def set_promoted(home: Home, profile: str, run_id: str | None, reason: str = "") -> None:
    """Point the profile at ``run_id`` (None: base model) in one atomic rename."""
    if run_id is not None:
        check_name(run_id, "run id")
        path = adapter_path(home, profile, run_id)
        if not (path / "adapter_config.json").is_file():
            raise UserError(f"run {run_id!r} of profile {profile!r} has no finished adapter.")
        if not (path / "adapter_model.safetensors").is_file() and any(path.glob("adapter_model*.bin")):
            # refused here, not at the next load: tuneloop never unpickles weights (adapter_model.bin)
            raise UserError(f"run {run_id!r} of profile {profile!r} has no adapter_model.safetensors in {path} "
                            "(pickle-only weights are never loaded); re-save it as safetensors or pick another run.")
    data = _read(home, profile)
    data["history"].append({"run_id": data.get("run_id"), "until": time.time()})
    data["run_id"] = run_id
    data["reason"] = reason
    write_private(promoted_file(home, profile), json.dumps(data, indent=2), home)


def rollback(home: Home, profile: str) -> str | None:
    """Go back to the adapter used before the current one; returns it (None: base)."""
    data = _read(home, profile)
    if not data["history"]:
        raise UserError(f"profile {profile!r} has no earlier adapter to roll back to.")
    previous = data["history"].pop()["run_id"]
    data["run_id"] = previous
    data["reason"] = "rollback"
    write_private(promoted_file(home, profile), json.dumps(data, indent=2), home)
    return previous
