"""LoRA adapters: which one a profile uses, and whether an adapter folder fits the loaded base model.

No torch here: these checks run before anything heavy is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine import adapters as pointer
from engine.errors import UserError
from engine.home import Home, check_name

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def resolve_adapter(home: Home, profile_name: str, run_or_base: str | None) -> tuple[str | None, Path | None]:
    """Map what a user typed to ``(run_id, adapter_dir)``; ``(None, None)`` means the base model.

    ``None`` or ``"base"``: the base model; ``"promoted"``: the profile's promoted adapter (the base
    model if none is promoted); anything else: a run id that must have a finished adapter.
    """
    if run_or_base in (None, "", "base"):
        return None, None
    if run_or_base == "promoted":
        run_id = pointer.promoted_run(home, profile_name)
        if run_id is None:
            return None, None
    else:
        run_id = check_name(run_or_base, "run id")
    path = pointer.adapter_path(home, profile_name, run_id)
    if not (path / ADAPTER_CONFIG).is_file():
        known = ", ".join(pointer.run_ids(home, profile_name)) or "none yet"
        raise UserError(
            f"run {run_id!r} of profile {profile_name!r} has no finished adapter at {path} "
            f"(runs with adapters: {known}); use --adapter base or a listed run."
        )
    return run_id, path


def read_adapter_config(path: Path) -> dict:
    """The adapter's config, refusing folders without safetensors weights (pickle is never loaded)."""
    path = Path(path)
    cfg_file = path / ADAPTER_CONFIG
    if not cfg_file.is_file():
        raise UserError(f"{path} is not a LoRA adapter folder (no {ADAPTER_CONFIG}).")
    if not (path / ADAPTER_WEIGHTS).is_file():
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt"))
        found = f" (found only {', '.join(pickles)}, which tuneloop does not load)" if pickles else ""
        raise UserError(f"{path} has no {ADAPTER_WEIGHTS}{found}; re-save the adapter with safetensors.")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{cfg_file} is not valid JSON ({exc}); the adapter is damaged.") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_file} is not a JSON object; the adapter is damaged.")
    return cfg


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def check_adapter_base(path: Path, cfg: dict, accepted: list[str]) -> None:
    """Refuse an adapter trained on another base model: its weights would be applied to the wrong
    layers or silently produce garbage. ``accepted`` holds the names the loaded base goes by (the
    profile's model id and its resolved local folder)."""
    base = cfg.get("base_model_name_or_path")
    if isinstance(base, str) and base:
        for name in accepted:
            if base == name or ((base.startswith(("/", ".", "~")) or Path(base).is_absolute()) and _same_path(base, name)):
                return
    raise UserError(
        f"adapter {path} was trained on base model {base!r}, but the loaded model is {accepted[0]!r}; "
        "use the profile the adapter was trained with."
    )
