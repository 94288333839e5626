"""LoRA adapters: which one a profile uses, where a run's adapter is, and whether it fits a base model.

The one owner of these rules (the chat, `engine generate`, finetune's parent, the gate and serving all
come here). ``home/runs/<profile>/promoted.json`` holds ``{"run_id": str | null, "history": [...]}``; it
is replaced by one rename, so a crash mid-promotion leaves the old adapter in use. No torch here: these
checks run before anything heavy is loaded.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError

from engine.errors import UserError
from engine.home import Home, check_name
from engine.safe_files import LinkRefused, check_tree, open_file, read_bytes, write_private

ADAPTER_SUBDIR = "adapter"  # run_dir/adapter holds the standard PEFT files of a finished run
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def promoted_file(home: Home, profile: str) -> Path:
    return home.runs_dir(profile) / "promoted.json"


class _HistoryEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    run_id: Optional[StrictStr]
    until: Optional[StrictFloat | StrictInt] = None


class _Promoted(BaseModel):
    """promoted.json: ``{"run_id": str | null, "history": [{"run_id": str | null, "until": time}, ...]}``."""

    model_config = ConfigDict(extra="allow")
    run_id: Optional[StrictStr] = None
    history: list[_HistoryEntry] = []
    reason: Optional[StrictStr] = None


def _read(home: Home, profile: str) -> dict:
    path = promoted_file(home, profile)
    try:
        with os.fdopen(home.open(path), "rb") as f:  # no link followed (LinkRefused names it)
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return {"run_id": None, "history": []}
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise UserError(f"{path} is corrupt; delete it to go back to the base model.") from None
    try:
        record = _Promoted.model_validate(data)
        if record.run_id is not None:
            check_name(record.run_id, "run id")
        for entry in record.history:
            if entry.run_id is not None:
                check_name(entry.run_id, "run id")
    except (ValidationError, UserError) as exc:
        what = "not a JSON object" if not isinstance(data, dict) else _why(exc)
        raise UserError(f"{path} is damaged ({what}); delete it to go back to the base model, or choose an adapter "
                        "again with `engine adapters use RUN`.") from None
    data.setdefault("history", [])
    return data


def _why(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return str(exc).rstrip(".")
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"'{where}' is missing" if err["type"] == "missing" else f"'{where}': {err['msg'].lower()}"


def promoted_run(home: Home, profile: str) -> str | None:
    """The run id of the adapter the profile uses, or None for the base model."""
    return _read(home, profile).get("run_id")


def adapter_path(home: Home, profile: str, run_id: str) -> Path:
    """``runs/<profile>/<run_id>/adapter``; refused if a link makes it point outside that run folder."""
    run_dir = home.run_dir(profile, run_id)
    path = run_dir / ADAPTER_SUBDIR
    try:
        check_tree(path, home)  # libraries (PEFT) open its files by path: no link on the way or inside
    except (FileNotFoundError, NotADirectoryError):
        pass  # no adapter there: the callers say so
    return path


def run_ids(home: Home, profile: str) -> list[str]:
    """Run ids that hold a complete adapter (published in one rename), oldest first (run ids sort by time). Not
    :func:`engine.runs.finished_run_ids`: a run promoted and then killed before its report.json holds the adapter
    in use (``engine finetune --resume`` writes the report)."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    return sorted(p.parent.parent.name for p in root.glob(f"*/{ADAPTER_SUBDIR}/{ADAPTER_CONFIG}"))


def set_promoted(home: Home, profile: str, run_id: str | None, reason: str = "") -> None:
    """Point the profile at ``run_id`` (None: base model) in one atomic rename."""
    if run_id is not None:
        check_name(run_id, "run id")
        path = adapter_path(home, profile, run_id)
        if not (path / ADAPTER_CONFIG).is_file():
            raise UserError(f"run {run_id!r} of profile {profile!r} has no finished adapter.")
        if not (path / ADAPTER_WEIGHTS).is_file() and any(path.glob("adapter_model*.bin")):
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


def resolve_adapter(home: Home, profile_name: str, run_or_base: str | None,
                    fix: str = "use --adapter base or a listed run") -> tuple[str | None, Path | None]:
    """Map what a user typed to ``(run_id, adapter_dir)``; ``(None, None)`` means the base model.

    ``None`` or ``"base"``: the base model; ``"promoted"``: the profile's promoted adapter (the base
    model if none is promoted); anything else: a run id that must have a finished adapter.
    """
    if run_or_base in (None, "", "base"):
        return None, None
    if run_or_base == "promoted":
        run_id = promoted_run(home, profile_name)
        if run_id is None:
            return None, None
    else:
        run_id = check_name(run_or_base, "run id")
    path = adapter_path(home, profile_name, run_id)
    if not (path / ADAPTER_CONFIG).is_file():
        known = ", ".join(run_ids(home, profile_name)) or "none yet"
        raise UserError(
            f"run {run_id!r} of profile {profile_name!r} has no finished adapter at {path} "
            f"(runs with adapters: {known}); {fix}."
        )
    read_adapter_config(path, weights=False)  # a damaged config: one sentence before anything loads
    return run_id, path


def read_adapter_config(path: Path, weights: bool = True) -> dict:
    """The adapter's config, refusing folders without safetensors weights (pickle is never loaded), a link in
    the folder, a config PEFT could not read, and (``weights``) truncated or garbage safetensors weights."""
    path = Path(path)
    cfg_file = path / ADAPTER_CONFIG
    if not cfg_file.is_file() and not cfg_file.is_symlink():
        raise UserError(f"{path} is not a LoRA adapter folder (no {ADAPTER_CONFIG}).")
    weights_file = path / ADAPTER_WEIGHTS
    if not weights_file.is_file() and not weights_file.is_symlink():
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        found = f" (found only {', '.join(pickles)}, which tuneloop does not load)" if pickles else ""
        raise UserError(f"{path} has no {ADAPTER_WEIGHTS}{found}; re-save the adapter with safetensors.")
    try:
        check_tree(path)  # a link in it (or to it) is refused before anything is read
        cfg = json.loads(read_bytes(cfg_file).decode("utf-8"))
    except LinkRefused:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"{cfg_file} is not valid JSON ({exc}); the adapter is damaged.") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_file} is not a JSON object; the adapter is damaged.")
    try:
        _AdapterConfig.model_validate(cfg)
    except ValidationError as exc:
        raise UserError(f"{cfg_file} is damaged ({_why(exc)}); the adapter cannot be loaded, so pick another run "
                        "or train a new one.") from None
    if weights:
        check_safetensors(weights_file)
    return cfg


class _AdapterConfig(BaseModel):
    """The keys of a PEFT LoRA config that PEFT reads as numbers or names (a string ``r`` would be a traceback)."""

    model_config = ConfigDict(extra="allow")
    r: Optional[StrictInt] = None
    lora_alpha: Optional[StrictInt | StrictFloat] = None
    lora_dropout: Optional[StrictInt | StrictFloat] = None
    peft_type: Optional[StrictStr] = None
    base_model_name_or_path: Optional[StrictStr] = None
    target_modules: Optional[StrictStr | list[StrictStr]] = None


def check_safetensors(path: Path) -> None:
    """Refuse (one sentence) a safetensors file that is truncated or not safetensors: its 8-byte header length,
    JSON header and the tensors' byte ranges must fit the file. Read without following links."""
    path = Path(path)
    with os.fdopen(open_file(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        raw = head + (f.read(n) if 0 < n <= min(size - 8, 100_000_000) else b"")
    problem = None
    if len(head) < 8:
        problem = "shorter than a safetensors header"
    else:
        header: Any = None
        if 8 + n <= len(raw):
            try:
                header = json.loads(raw[8:8 + n].decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                header = None
        if not isinstance(header, dict):
            problem = "not a safetensors file (no readable header)"
        else:
            end = 0
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                offsets = info.get("data_offsets") if isinstance(info, dict) else None
                if (not isinstance(offsets, list) or len(offsets) != 2
                        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
                    problem = f"tensor {name!r} has no valid data offsets"
                    break
                end = max(end, offsets[1])
            if problem is None and 8 + n + end > size:
                problem = f"truncated ({size} bytes, its header describes {8 + n + end})"
    if problem:
        raise UserError(f"{path} is damaged ({problem}); the adapter cannot be loaded, so pick another run or train a "
                        "new one.")


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def check_adapter_base(path: Path, accepted: list[str],
                       fix: str = "use the profile the adapter was trained with") -> None:
    """Refuse an adapter trained on another base model: its weights would be applied to the wrong
    layers or silently produce garbage. ``accepted`` holds the names the loaded base goes by (the
    profile's model id and the local folder it was loaded from). Reads the adapter's config (and refuses
    a folder without safetensors weights) first."""
    base = read_adapter_config(path, weights=False).get("base_model_name_or_path")
    if isinstance(base, str) and base:
        for name in accepted:
            if base == name or ((base.startswith(("/", ".", "~")) or Path(base).is_absolute()) and _same_path(base, name)):
                check_safetensors(Path(path) / ADAPTER_WEIGHTS)  # the right base: now its weights must be whole
                return
    raise UserError(
        f"adapter {path} was trained on {base!r}, but the loaded model is {accepted[0]!r}; {fix}."
    )
