"""The feedback event schema (versions 1 and 2), declared once as typed models, and its validation.

Every line of the log is one of these objects. Validation runs on append (so a bad event never
reaches the disk) and on read (so a hand-edited or corrupted line is skipped and reported instead
of poisoning replay). Unknown extra keys are allowed: a later minor addition must not make old
readers drop events. Events with ``"v"`` greater than :data:`SCHEMA_VERSION` are kept by the reader
but not validated or replayed (a newer tuneloop wrote them).

Version 2 adds one event type, ``critique`` (language feedback: what the person said is wrong with a reply,
which revision the model wrote for it, and what the person did with that revision). Every other type is
still written as version 1, so a version-1 reader replays all of them and skips only the critiques
(counted as newer events). The revision itself is an ordinary assistant ``message`` (a sibling of the
reply it revises) whose ``generation`` record carries ``revision_of``, ``critique`` and ``revision_prompt``.

Each event type is a pydantic model (:data:`MODELS`: strict types, extra keys allowed, every schema key
required, null where the model says so), declared once with what each field expects. The models check; the
log keeps, writes and replays the plain JSON objects, so the on-disk format is exactly the one documented in
docs/ARCHITECTURE.md ("Feedback log").
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from engine.errors import UserError

SCHEMA_VERSION = 2
"""The newest event version this reader understands (see :data:`TYPE_VERSION`)."""
MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is refused on append and skipped on read

TYPE_VERSION = {"critique": 2}
"""The version an event type is written with (1 when not listed): the oldest reader that knows the type."""
IMPORT_KEY = "import_id"
"""Set on every event an ``engine import`` wrote: the event counts only once its ``import`` commit record
(same ``import_id``) is in the log (see engine.feedback.replay.visible_events)."""
Role = Literal["system", "user", "assistant"]
ChoiceKind = Literal["regenerate", "compare", "best_of", "import"]
CritiqueOutcome = Literal["accepted", "edited", "discarded"]
ROLES: tuple[str, ...] = get_args(Role)
CHOICE_KINDS: tuple[str, ...] = get_args(ChoiceKind)
CRITIQUE_OUTCOMES: tuple[str, ...] = get_args(CritiqueOutcome)
RATING_VALUES = (-1, 0, 1)


class InvalidEvent(UserError, ValueError):
    """An event that does not match the schema. A UserError (one sentence, exit 2) because a user can
    cause it through import or a hand-edited log; also a ValueError for code that expects one."""


def new_id() -> str:
    return uuid.uuid4().hex


def complete(event: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``event`` with ``v``, ``id`` and ``ts`` (and a rating's ``tags``/``comment``)
    filled in where missing. On disk every key of the schema is required (see :func:`validate`)."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"a feedback event must be a JSON object, not {type(event).__name__}.")
    out = {"v": version_of(event.get("type")), "id": new_id(), "ts": time.time()}
    out.update(event)
    # Fill-ins only when absent; an explicit None is a caller bug, reported by validate().
    if out.get("type") == "rating":
        out.setdefault("tags", [])
        out.setdefault("comment", None)
    return out


def version_of(kind: Any) -> int:
    """The version an event of type ``kind`` is written with."""
    return TYPE_VERSION.get(kind, 1) if isinstance(kind, str) else 1



_EVENT = ConfigDict(strict=True, extra="allow", allow_inf_nan=False, frozen=True)


def _f(expected: str, *args: Any, **kwargs: Any) -> Any:
    """A field with what it expects, in the words of the one-sentence error (:class:`InvalidEvent`)."""
    return Field(*args, json_schema_extra={"expected": expected}, **kwargs)


Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
NOT_A_CANDIDATE = "not_a_candidate"
Count = Annotated[int, Field(ge=0)]


class Event(BaseModel):
    """What every event has. Extra keys are allowed (a later minor addition must not make old readers drop
    events); every key a type declares must be present (``None`` only where the type allows null)."""

    model_config = _EVENT
    v: int = _f(f"an integer from 1 to {SCHEMA_VERSION}", ge=1, le=SCHEMA_VERSION)
    type: str = _f("a known event type")
    id: Id = _f("a non-empty id string")
    ts: float = _f("a unix time")


class Generation(BaseModel):
    """A ``message``'s ``generation`` record: free-form (model, settings, adapter...), only checked where replay
    reads it."""

    model_config = _EVENT
    system_prompt: str | None = _f("a string or null", None)


class MessageEvent(Event):
    type: Literal["message"] = _f("message")
    conversation_id: Id = _f("an id string")
    parent_id: Id | None = _f("an id string or null")
    role: Role = _f("system, user or assistant")
    content: str = _f("a string")
    generation: Generation | None = _f("an object or null", None)


class RatingEvent(Event):
    type: Literal["rating"] = _f("rating")
    message_id: Id = _f("an id string")
    value: int = _f("+1, -1 or 0", ge=min(RATING_VALUES), le=max(RATING_VALUES))
    tags: list[str] = _f("a list of strings")
    comment: str | None = _f("a string or null")


class EditEvent(Event):
    type: Literal["edit"] = _f("edit")
    message_id: Id = _f("an id string")
    content: str = _f("a string")


class ChoiceEvent(Event):
    type: Literal["choice"] = _f("choice")
    chosen_id: Id = _f("an id string")
    candidates: list[Id] = _f("a list of distinct id strings", min_length=1)
    kind: ChoiceKind = _f("one of " + ", ".join(CHOICE_KINDS))
    sources: dict[str, Any] | None = _f("an object mapping candidate ids to labels, or null", None)

    @field_validator("candidates")
    @classmethod
    def _distinct(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("repeated")
        if "chosen_id" in info.data and info.data["chosen_id"] not in value:  # checked here: before kind, sources
            raise PydanticCustomError(NOT_A_CANDIDATE, "chosen_id is not one of the candidates")
        return value


class TitleEvent(Event):
    type: Literal["title"] = _f("title")
    conversation_id: Id = _f("an id string")
    title: str = _f("a string")


class ImportEvent(Event):
    """The commit record of one ``engine import``: its events become visible (replay) once this is written."""

    type: Literal["import"] = _f("import")
    import_id: Id = _f("an id string")
    events: Count = _f("a count")
    rows: Count = _f("a count")
    sha256: str = _f("the imported file's sha256", min_length=64, max_length=64)
    file: str = _f("the imported file's name")


class CritiqueEvent(Event):
    """Language feedback on reply ``message_id``: the ``critique`` text, the ``revision_id`` written for it
    (null: none) and the ``outcome`` for that revision (accepted, edited or discarded)."""

    type: Literal["critique"] = _f("critique")
    message_id: Id = _f("an id string")
    critique: str = _f("a non-empty string", pattern=r"\S")
    revision_id: Id | None = _f("an id string or null")
    outcome: CritiqueOutcome = _f("one of " + ", ".join(CRITIQUE_OUTCOMES))


MODELS: dict[str, type[Event]] = {
    "message": MessageEvent, "rating": RatingEvent, "edit": EditEvent, "choice": ChoiceEvent,
    "title": TitleEvent, "import": ImportEvent, "critique": CritiqueEvent,
}
"""The model of each event type."""
EVENT_TYPES: tuple[str, ...] = tuple(MODELS)


def _invalid(event: dict, field: str, expected: str, got: Any) -> InvalidEvent:
    return InvalidEvent(f"feedback event {event.get('type', '?')!r} has an invalid {field!r} (expected {expected}, "
                        f"got {got!r:.80}).")


def validate(event: Any) -> dict[str, Any]:
    """Check an event of a known version against its model; return it unchanged or raise :class:`InvalidEvent`
    naming the field (``v``, then ``type``, then the rest in the model's order). A type is valid from its
    :data:`TYPE_VERSION` on (a version-1 ``critique`` is refused)."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"a feedback event must be a JSON object, not {type(event).__name__}.")
    kind, v = event.get("type"), event.get("v")
    model = MODELS.get(kind) if isinstance(kind, str) else None
    if type(v) is int and 1 <= v <= SCHEMA_VERSION and (model is None or version_of(kind) > v):
        known = [t for t in EVENT_TYPES if version_of(t) <= v]
        raise _invalid(event, "type", "one of " + ", ".join(known), kind)
    try:
        (model or Event).model_validate(event)
    except ValidationError as exc:
        raise _first_error(event, exc, model or Event) from None
    return event


def _first_error(event: dict, exc: ValidationError, model: type[BaseModel]) -> InvalidEvent:
    """The first failing field (a nested one, like ``generation.system_prompt``, by its own name)."""
    first = exc.errors()[0]
    if first["type"] == NOT_A_CANDIDATE:
        return _invalid(event, "chosen_id", "one of the candidates", event.get("chosen_id"))
    holder: dict = event  # the object that holds the failing field
    field, expected = "?", "valid"
    for part in first["loc"]:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        if not isinstance(part, str) or info is None:
            break
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        field, expected = part, str(extra.get("expected", "valid"))
        value = holder.get(field)
        nested = next((a for a in getattr(info.annotation, "__args__", (info.annotation,))
                       if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None or not isinstance(value, dict):
            break
        holder, model = value, nested
    return _invalid({**holder, "type": event.get("type", "?")}, field, expected, holder.get(field))
