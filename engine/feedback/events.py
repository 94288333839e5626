"""The feedback event schema (versions 1 and 2) and its validation.

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
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from engine.errors import UserError

SCHEMA_VERSION = 2
"""The newest event version this reader understands (see :data:`TYPE_VERSION`)."""
MAX_LINE_BYTES = 16 * 1024 * 1024  # a longer line is refused on append and skipped on read

EVENT_TYPES = ("message", "rating", "edit", "choice", "title", "import", "critique")
TYPE_VERSION = {"critique": 2}
"""The version an event type is written with (1 when not listed): the oldest reader that knows the type."""
CRITIQUE_OUTCOMES = ("accepted", "edited", "discarded")
IMPORT_KEY = "import_id"
"""Set on every event an ``engine import`` wrote: the event counts only once its ``import`` commit record
(same ``import_id``) is in the log (see engine.feedback.replay.visible_events)."""
ROLES = ("system", "user", "assistant")
RATING_VALUES = (-1, 0, 1)
CHOICE_KINDS = ("regenerate", "compare", "best_of", "import")


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


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 200


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float (a corrupted line) is no unix time
        return False


def _check(ok: bool, event: dict, field: str, expected: str) -> None:
    if not ok:
        kind = event.get("type", "?")
        raise InvalidEvent(
            f"feedback event {kind!r} has an invalid {field!r} (expected {expected}, got {event.get(field)!r:.80})."
        )


def validate(event: Any) -> dict[str, Any]:
    """Check an event of a known version; return it unchanged or raise :class:`InvalidEvent` naming the field.
    A type is valid from its :data:`TYPE_VERSION` on (a version-1 ``critique`` is refused)."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"a feedback event must be a JSON object, not {type(event).__name__}.")
    v = event.get("v")
    _check(isinstance(v, int) and _is_int(v) and 1 <= v <= SCHEMA_VERSION, event, "v",
           f"an integer from 1 to {SCHEMA_VERSION}")
    known = [t for t in EVENT_TYPES if version_of(t) <= event["v"]]
    _check(event.get("type") in known, event, "type", "one of " + ", ".join(known))
    _check(_is_id(event.get("id")), event, "id", "a non-empty id string")
    ts = event.get("ts")
    _check(_is_time(ts), event, "ts", "a unix time")
    _VALIDATORS[event["type"]](event)
    return event


def _message(e: dict) -> None:
    _check(_is_id(e.get("conversation_id")), e, "conversation_id", "an id string")
    _check("parent_id" in e and (e["parent_id"] is None or _is_id(e["parent_id"])), e, "parent_id", "an id string or null")
    _check(e.get("role") in ROLES, e, "role", "system, user or assistant")
    _check(_is_str(e.get("content")), e, "content", "a string")
    gen = e.get("generation")
    _check(gen is None or isinstance(gen, dict), e, "generation", "an object or null")
    if isinstance(gen, dict):
        sp = gen.get("system_prompt")
        _check(sp is None or _is_str(sp), {**gen, "type": "message"}, "system_prompt", "a string or null")


def _rating(e: dict) -> None:
    _check(_is_id(e.get("message_id")), e, "message_id", "an id string")
    _check(_is_int(e.get("value")) and e.get("value") in RATING_VALUES, e, "value", "+1, -1 or 0")
    tags = e.get("tags")
    _check(isinstance(tags, list) and all(_is_str(t) for t in tags), e, "tags", "a list of strings")
    _check("comment" in e and (e["comment"] is None or _is_str(e["comment"])), e, "comment", "a string or null")


def _edit(e: dict) -> None:
    _check(_is_id(e.get("message_id")), e, "message_id", "an id string")
    _check(_is_str(e.get("content")), e, "content", "a string")


def _choice(e: dict) -> None:
    _check(_is_id(e.get("chosen_id")), e, "chosen_id", "an id string")
    cands = e.get("candidates")
    _check(
        isinstance(cands, list) and len(cands) >= 1 and all(_is_id(c) for c in cands) and len(set(cands)) == len(cands),
        e,
        "candidates",
        "a list of distinct id strings",
    )
    _check(isinstance(cands, list) and e["chosen_id"] in cands, e, "chosen_id", "one of the candidates")
    _check(e.get("kind") in CHOICE_KINDS, e, "kind", "one of " + ", ".join(CHOICE_KINDS))
    src = e.get("sources")
    _check(
        src is None or (isinstance(src, dict) and all(_is_str(k) for k in src)),
        e,
        "sources",
        "an object mapping candidate ids to labels, or null",
    )


def _import(e: dict) -> None:
    """The commit record of one ``engine import``: its events become visible (replay) once this is written."""
    _check(_is_id(e.get("import_id")), e, "import_id", "an id string")
    for key in ("events", "rows"):
        _check(_is_int(e.get(key)) and e[key] >= 0, e, key, "a count")
    sha = e.get("sha256")
    _check(isinstance(sha, str) and len(sha) == 64, e, "sha256", "the imported file's sha256")
    _check(_is_str(e.get("file")), e, "file", "the imported file's name")


def _critique(e: dict) -> None:
    """Language feedback on reply ``message_id``: the ``critique`` text, the ``revision_id`` written for it
    (null: none) and the ``outcome`` for that revision (accepted, edited or discarded)."""
    _check(_is_id(e.get("message_id")), e, "message_id", "an id string")
    _check(_is_str(e.get("critique")) and bool(e["critique"].strip()), e, "critique", "a non-empty string")
    _check("revision_id" in e and (e["revision_id"] is None or _is_id(e["revision_id"])), e, "revision_id",
           "an id string or null")
    _check(e.get("outcome") in CRITIQUE_OUTCOMES, e, "outcome", "one of " + ", ".join(CRITIQUE_OUTCOMES))


def _title(e: dict) -> None:
    _check(_is_id(e.get("conversation_id")), e, "conversation_id", "an id string")
    _check(_is_str(e.get("title")), e, "title", "a string")


_VALIDATORS = {"message": _message, "rating": _rating, "edit": _edit, "choice": _choice, "title": _title,
               "import": _import, "critique": _critique}

