"""Import TRL-format JSONL into a profile's feedback log, as conversations with judgements.

Accepted rows (``--format auto`` decides per file from the first row's keys):
- preference: ``prompt``/``chosen``/``rejected``, conversational (lists of messages) or standard
  (plain strings); with an implicit prompt (no ``prompt`` key) the prompt is the shared prefix of
  ``chosen`` and ``rejected`` (messages, or characters for plain text, as TRL's ``extract_prompt``).
- sft: conversational ``messages``; the last turn must be the assistant's and is the liked reply.
- unpaired: ``prompt``/``completion``/``label`` (label true or false).
Each row becomes a new conversation: the prompt's turns as a chain of messages, then the reply or
replies. A preference pair is two assistant siblings, a ``choice`` of kind ``import`` of the chosen
one, and ratings +1 (chosen) and -1 (rejected); an sft reply is rated +1; an unpaired reply is
rated +1 or -1 by its label. A leading system turn becomes the replies' generation record's
``system_prompt``; every imported assistant turn's generation record is
``{"imported": <file name>, "system_prompt": ...}``. So exporting the imported rows gives them back.

Everything is validated before anything is written, then appended with one ``append_many``: a bad
file raises one UserError naming ``file:line`` and leaves the log untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.feedback.events import ROLES, new_id
from engine.feedback.log import FeedbackLog

FORMATS = ("auto", "preference", "sft", "unpaired")


@dataclass
class ImportResult:
    format: str
    rows: int
    """Rows that became conversations."""
    skipped: int
    """Preference rows whose chosen and rejected texts were identical (nothing to learn; not imported)."""
    events: int


class _RowError(Exception):
    """A problem with one row; turned into a UserError naming the file and line."""


def detect_format(row: dict) -> str:
    if "messages" in row:
        return "sft"
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "completion" in row and "label" in row:
        return "unpaired"
    raise _RowError(
        "cannot tell the format: expected 'messages' (sft), 'chosen'+'rejected' (preference) "
        "or 'prompt'+'completion'+'label' (unpaired)"
    )


def _turns(value: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise _RowError(f"{what!r} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise _RowError(
                f"{what!r} item {i} must be {{\"role\": system|user|assistant, \"content\": <text>}}"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _split_system(turns: list[dict[str, str]], what: str) -> tuple[str, list[dict[str, str]]]:
    """A leading system turn becomes the system prompt; the rest must hold at least one turn."""
    system = ""
    if turns and turns[0]["role"] == "system" and turns[0]["content"]:  # an empty one stays in the tree
        system, turns = turns[0]["content"], turns[1:]
    if not any(t["role"] == "user" for t in turns):
        raise _RowError(f"{what!r} has no user turn")
    return system, turns


def _reply(value: Any, what: str) -> str:
    """A completion: a plain string, or a list holding exactly one assistant message."""
    if isinstance(value, str):
        return value
    turns = _turns(value, what)
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise _RowError(f"{what!r} must be exactly one assistant message")
    return turns[0]["content"]


def _prompt(value: Any) -> tuple[str, list[dict[str, str]]]:
    if isinstance(value, str):
        if not value:
            raise _RowError("'prompt' is empty")
        return "", [{"role": "user", "content": value}]
    return _split_system(_turns(value, "prompt"), "prompt")


def _text_prefix(a: str, b: str) -> int:
    """TRL's ``extract_prompt`` for plain text: the common prefix, not ending on the space before."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    if i < n and i > 0 and a[i - 1] == " ":
        i -= 1
    return i


def _parse_preference(row: dict) -> tuple[str, list, list[str]]:
    chosen, rejected = row["chosen"], row["rejected"]
    conversational = isinstance(chosen, list)
    prompt = row.get("prompt")
    if isinstance(prompt, list) and not isinstance(chosen, list):
        raise _RowError("'prompt' is a list of messages but 'chosen' is not: use one format for all three")
    explicit = prompt is not None and isinstance(prompt, list) == conversational
    if explicit:
        system, turns = _prompt(prompt)
        return system, turns, [_reply(chosen, "chosen"), _reply(rejected, "rejected")]
    if conversational:
        c, r = _turns(chosen, "chosen"), _turns(rejected, "rejected")
        i = 0
        while i < min(len(c), len(r)) and c[i] == r[i]:
            i += 1
        system, turns = _split_system(c[:i], "prompt (shared prefix of chosen and rejected)")
        return system, turns, [_reply(c[i:], "chosen"), _reply(r[i:], "rejected")]
    if not isinstance(chosen, str) or not isinstance(rejected, str):
        raise _RowError("'chosen' and 'rejected' must both be strings or both be lists of messages")
    i = _text_prefix(chosen, rejected)
    if i == 0:
        raise _RowError("has no 'prompt', and 'chosen' and 'rejected' share no prefix to use as one")
    return "", [{"role": "user", "content": chosen[:i]}], [chosen[i:], rejected[i:]]


def _parse_sft(row: dict) -> tuple[str, list, str]:
    turns = _turns(row["messages"], "messages")
    if turns[-1]["role"] != "assistant":
        raise _RowError("the last of 'messages' must be an assistant turn")
    system, prompt = _split_system(turns[:-1], "messages")
    return system, prompt, turns[-1]["content"]


def _parse_unpaired(row: dict) -> tuple[str, list, str, bool]:
    if "prompt" not in row:
        raise _RowError("'prompt' is missing")
    label = row["label"]
    if not isinstance(label, bool):
        raise _RowError(f"'label' must be true or false, not {label!r:.40}")
    system, turns = _prompt(row["prompt"])
    return system, turns, _reply(row["completion"], "completion"), label


def _row_events(fmt: str, row: dict, source: str) -> tuple[list[dict], bool]:
    """The events for one row, and whether the row counts (False: identical preference pair)."""
    if fmt == "preference":
        system, prompt, (chosen, rejected) = _parse_preference(row)
        replies = [(chosen, 1), (rejected, -1)]
    elif fmt == "sft":
        system, prompt, text = _parse_sft(row)
        replies = [(text, 1)]
    else:
        system, prompt, text, label = _parse_unpaired(row)
        replies = [(text, 1 if label else -1)]
    generation = {"imported": source, "system_prompt": system}
    conv = new_id()
    events, parent = [], None
    for turn in prompt:
        ev = {
            "type": "message",
            "id": new_id(),
            "conversation_id": conv,
            "parent_id": parent,
            "role": turn["role"],
            "content": turn["content"],
        }
        if turn["role"] == "assistant":
            ev["generation"] = dict(generation)
        events.append(ev)
        parent = ev["id"]
    reply_ids = []
    for text, _ in replies:
        ev = {
            "type": "message",
            "id": new_id(),
            "conversation_id": conv,
            "parent_id": parent,
            "role": "assistant",
            "content": text,
            "generation": dict(generation),
        }
        events.append(ev)
        reply_ids.append(ev["id"])
    if fmt == "preference":
        events.append({"type": "choice", "chosen_id": reply_ids[0], "candidates": reply_ids, "kind": "import"})
    for rid, (_, value) in zip(reply_ids, replies):
        events.append({"type": "rating", "message_id": rid, "value": value, "tags": ["imported"], "comment": None})
    useful = not (fmt == "preference" and replies[0][0] == replies[1][0])
    return events, useful


def plan_import(path: Path, fmt: str = "auto") -> tuple[list[dict], ImportResult]:
    """Parse and validate the whole file; return the events to append (nothing is written)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r}: use auto, preference, sft or unpaired.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    events: list[dict] = []
    rows = skipped = 0
    chosen_fmt = None if fmt == "auto" else fmt
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            try:
                row = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise _RowError("is not UTF-8") from None
            except json.JSONDecodeError as exc:
                raise _RowError(f"is not valid JSON ({exc.msg})") from None
            except (ValueError, RecursionError):  # an int past Python's digit limit, or absurd nesting
                raise _RowError("is not valid JSON (a number too long or nesting too deep)") from None
            if not isinstance(row, dict):
                raise _RowError("is not a JSON object")
            if chosen_fmt is None:
                chosen_fmt = detect_format(row)
            required = {"preference": ("chosen", "rejected"), "sft": ("messages",), "unpaired": ("completion", "label")}
            missing = [k for k in required[chosen_fmt] if k not in row]
            if missing:
                raise _RowError(f"is missing {missing[0]!r} for the {chosen_fmt} format")
            row_events, useful = _row_events(chosen_fmt, row, path.name)
        except _RowError as exc:
            raise UserError(f"{where}: {exc}; fix that line and import again (nothing was imported).") from None
        if useful:
            events.extend(row_events)
        rows += useful
        skipped += not useful
    if chosen_fmt is None:
        raise UserError(f"{path} has no rows to import.")
    return events, ImportResult(chosen_fmt, rows, skipped, len(events))


def import_file(log: FeedbackLog, path: Path, fmt: str = "auto") -> ImportResult:
    """Validate the whole file, then append every event in one write (all or nothing)."""
    events, result = plan_import(path, fmt)
    log.append_many(events)
    return result
