"""The shapes of a run's records (manifest.json, report.json), checked when they are read back.

These files are written by tuneloop, but they live in the user's home and can be edited, truncated or
replaced: a manifest that is a list, a ``plan`` that is a number or a finetune manifest that lost its
``data`` would otherwise surface as a KeyError or TypeError deep inside a listing or a resume. Reading
them through these small pydantic models turns every such file into one sentence naming it. Only the
keys the readers rely on are declared; every other key is kept as written (``extra="allow"``), and the
readers keep getting the plain dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from engine.errors import UserError


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Data(_Record):
    fingerprint: StrictStr


class Manifest(_Record):
    """Any run's manifest."""

    command: Optional[StrictStr] = None
    plan: list[StrictStr] = []
    rows: dict[StrictStr, dict[StrictStr, StrictInt]] = {}
    parent_adapter: Optional[StrictStr] = None
    parent_adapter_path: Optional[StrictStr] = None
    status: Optional[StrictStr] = None
    eval_on_train: Optional[StrictBool] = None


class FinetuneManifest(Manifest):
    """What ``engine finetune`` (a resume, the gate, the report) reads back by key."""

    method: StrictStr
    plan: list[StrictStr]
    data: _Data
    settings: dict[StrictStr, Any]
    profile_settings: dict[StrictStr, Any]
    base_model: dict[StrictStr, Any]
    counts: dict[StrictStr, Any]
    rows: dict[StrictStr, dict[StrictStr, StrictInt]]
    rl: dict[StrictStr, Any]
    overrides: dict[StrictStr, Any] = {}
    gate_against: Optional[StrictStr] = None


class RewardManifest(Manifest):
    split: dict[StrictStr, Any]
    status: StrictStr
    settings: dict[StrictStr, Any]


class _FinetuneEval(_Record):
    new: dict[StrictStr, Any] = {}


class Report(_Record):
    """Any run's report.json (its presence marks a finished run)."""

    promoted: Optional[StrictBool] = None
    steps: Optional[StrictInt] = None
    reason: Optional[StrictStr] = None
    adapter_rows: Optional[StrictStr] = None
    eval: dict[StrictStr, Any] = {}


class FinetuneReport(_Record):
    """A finetune run's report.json (it has ``promoted``): what `engine adapters` lists."""

    promoted: StrictBool
    steps: Optional[StrictInt] = None
    reason: Optional[StrictStr] = None
    adapter_rows: Optional[StrictStr] = None
    eval: _FinetuneEval = _FinetuneEval()


def _problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the file"
    if err["type"] == "missing":
        return f"key '{where}' is missing"
    return f"key '{where}' {err['msg'][0].lower()}{err['msg'][1:]}"


def _check(model: type[BaseModel], data: Any, path: Path) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{path} is damaged ({_problem(exc)}); delete that run directory (or restore the file) and "
                        "run again.") from None


def check_manifest(data: Any, path: Path) -> dict:
    """``data`` (a manifest read from ``path``) if it has the shape its command needs, else one UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{path} is damaged (not a JSON object); delete that run directory and run again.")
    command = data.get("command")
    models: dict[str, type[BaseModel]] = {"finetune": FinetuneManifest, "reward": RewardManifest}
    model = models.get(command if isinstance(command, str) else "", Manifest)
    _check(model, data, path)
    return data


def check_report(data: Any, path: Path, command: str | None = None) -> dict:
    """``data`` (a report.json read from ``path``) if it has the shape listings read, else one UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{path} is damaged (not a JSON object); delete that run directory and run again.")
    _check(FinetuneReport if "promoted" in data else Report, data, path)
    return data
