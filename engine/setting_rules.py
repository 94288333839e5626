"""The rules of a setting put in words, and flags checked by them: what a setting accepts (``allowed``, used in
every refusal), a command-line flag applied to a settings table (``override``) or checked alone
(``check_value``). The settings themselves are declared in engine.settings."""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal, TypeVar

import annotated_types as at
from pydantic import ValidationError

from engine.errors import UserError

NOT_BLANK = r"\S"
"""The pattern of a string setting that may not be blank (said as "a non-empty string")."""

# ------------------------------------------------------------------------------------ describing a rule


def _kind(annotation) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if args and typing.get_origin(annotation) is not list:  # X | None
        return " or ".join(_kind(a) for a in args)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a finite number"
    if annotation is str:
        return "a string"
    if typing.get_origin(annotation) is list:
        return "a list of strings"
    return str(annotation)


def _num(x) -> str:
    if isinstance(x, int) and abs(x) >= 100_000:
        return f"{x:,}".replace(",", "_")
    return f"{x:g}" if isinstance(x, float) else str(x)


def allowed(cls: Any, name: str) -> str:
    """What setting ``name`` of table ``cls`` accepts, in words: "a finite number > 0 and <= 1"."""
    info = cls.__pydantic_fields__[name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if "allowed" in extra:
        return str(extra["allowed"])
    bounds = []
    for m in info.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(m, attr, None)
            if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le, at.Interval)) and value is not None:
                bounds.append(f"{op} {_num(value)}")
    text = _kind(info.annotation)
    if getattr(info, "metadata", None) and any(getattr(m, "pattern", None) == NOT_BLANK for m in info.metadata):
        text = "a non-empty string"
    return f"{text} {' and '.join(bounds)}" if bounds else text


def _shown(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _failed_key(exc: ValidationError) -> str | None:
    for err in exc.errors():
        if err["loc"] and isinstance(err["loc"][0], str):
            return err["loc"][0]
    return None


T = TypeVar("T")


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def override(settings: T, values: dict[str, Any], name=flag_name) -> T:
    """``settings`` with ``values`` applied (None means "not given"), each checked by the rule of its
    setting; a refusal is one sentence naming ``name(key)`` (the command-line flag) and what it accepts."""
    cls = type(settings)
    changes = {k: v for k, v in values.items() if v is not None}
    for key, value in changes.items():
        check_value(cls, key, value, name(key))
    return dataclasses.replace(settings, **changes) if changes else settings  # type: ignore[type-var]


def check_value(cls: Any, key: str, value: Any, label: str) -> Any:
    """Check one value against setting ``key`` of ``cls`` (e.g. a flag with no table of its own)."""
    if key not in cls.__pydantic_fields__:
        raise TypeError(f"{cls.__name__} has no setting {key!r}")
    defaults = {k: "x" if info.is_required() else info.get_default(call_default_factory=True)
                for k, info in cls.__pydantic_fields__.items()}  # "x": a stand-in for model.id
    try:
        cls(**{**defaults, key: value})
    except ValidationError:
        raise UserError(f"{label} {_shown(value)} must be {allowed(cls, key)}.") from None
    return value
