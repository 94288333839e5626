"""The rows ``engine import`` reads, one format each (preference, sft, unpaired, critique: see
engine.feedback.import_rows), and the log events one row becomes: a conversation of messages, then its
choice, ratings or critique events. Pure functions of one row; a row that does not fit its format raises
``RowError`` with what is wrong (the importer adds the file and line)."""

from __future__ import annotations

from typing import Any

from engine.feedback import events as ev
from engine.feedback.events import ROLES, new_id


class RowError(Exception):
    """A problem with one row; turned into a UserError naming the file and line."""


def detect_format(row: dict) -> str:
    if "critique" in row and "original" in row:
        return "critique"
    if "messages" in row:
        return "sft"
    if "chosen" in row and "rejected" in row:
        return "preference"
    if "completion" in row and "label" in row:
        return "unpaired"
    raise RowError(
        "cannot tell the format: expected 'messages' (sft), 'chosen'+'rejected' (preference) "
        "'prompt'+'completion'+'label' (unpaired) or 'original'+'critique' (critique)"
    )


def _turns(value: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RowError(f"{what!r} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RowError(
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
        raise RowError(f"{what!r} has no user turn")
    return system, turns


def _reply(value: Any, what: str) -> str:
    """A completion: a plain string, or a list holding exactly one assistant message."""
    if isinstance(value, str):
        return value
    turns = _turns(value, what)
    if len(turns) != 1 or turns[0]["role"] != "assistant":
        raise RowError(f"{what!r} must be exactly one assistant message")
    return turns[0]["content"]


def _prompt(value: Any) -> tuple[str, list[dict[str, str]]]:
    if isinstance(value, str):
        if not value:
            raise RowError("'prompt' is empty")
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
    if isinstance(chosen, str) != isinstance(rejected, str) or isinstance(chosen, list) != isinstance(rejected, list):
        # refused, not normalised: which of the two a mixed row meant is a guess
        raise RowError(f"'chosen' is {_kind(chosen)} but 'rejected' is {_kind(rejected)}: use one format for both "
                        "(two strings, or two lists of messages)")
    conversational = isinstance(chosen, list)
    prompt = row.get("prompt")
    if isinstance(prompt, list) and not isinstance(chosen, list):
        raise RowError("'prompt' is a list of messages but 'chosen' is not: use one format for all three")
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
        raise RowError("'chosen' and 'rejected' must both be strings or both be lists of messages")
    return _text_pair(chosen, rejected)


def _text_pair(chosen: str, rejected: str) -> tuple[str, list, list[str]]:
    i = _text_prefix(chosen, rejected)
    if i == 0:
        raise RowError("has no 'prompt', and 'chosen' and 'rejected' share no prefix to use as one")
    return "", [{"role": "user", "content": chosen[:i]}], [chosen[i:], rejected[i:]]


def _kind(value: Any) -> str:
    return "a string" if isinstance(value, str) else "a list of messages" if isinstance(value, list) else \
        f"a JSON {type(value).__name__}"


def _parse_sft(row: dict) -> tuple[str, list, str]:
    turns = _turns(row["messages"], "messages")
    if turns[-1]["role"] != "assistant":
        raise RowError("the last of 'messages' must be an assistant turn")
    system, prompt = _split_system(turns[:-1], "messages")
    return system, prompt, turns[-1]["content"]


def _parse_unpaired(row: dict) -> tuple[str, list, str, bool]:
    if "prompt" not in row:
        raise RowError("'prompt' is missing")
    label = row["label"]
    if not isinstance(label, bool):
        raise RowError(f"'label' must be true or false, not {label!r:.40}")
    system, turns = _prompt(row["prompt"])
    return system, turns, _reply(row["completion"], "completion"), label


def _parse_critique(row: dict) -> tuple[str, list, str, str, str | None, str | None]:
    system, turns = _prompt(row.get("prompt"))
    critique = row["critique"]
    if not isinstance(critique, str) or not critique.strip():
        raise RowError("'critique' must be a non-empty string")
    revision = row.get("revision")
    revision = None if revision is None else _reply(revision, "revision")
    outcome = row.get("outcome")
    if outcome not in (None, *ev.CRITIQUE_OUTCOMES):
        raise RowError(f"'outcome' must be one of {', '.join(ev.CRITIQUE_OUTCOMES)} or null, not {outcome!r:.40}")
    if revision is None and outcome is not None:
        raise RowError("has an 'outcome' but no 'revision'")
    return system, turns, _reply(row["original"], "original"), critique, revision, outcome


def _critique_events(row: dict, source: str) -> list[dict]:
    system, prompt, original, critique, revision, outcome = _parse_critique(row)
    generation = {"imported": source, "system_prompt": system}
    events, parent, conv = _chain(prompt, generation)
    orig = _message(conv, parent, original, dict(generation))
    events.append(orig)
    if revision is None:
        events.append({"type": "rating", "message_id": orig["id"], "value": -1, "tags": ["imported"],
                       "comment": critique})
        return events
    machine = row.get("source") == "machine_revision"
    rev = _message(conv, parent, revision, {**generation, "revision_of": orig["id"], "critique": critique,
                                            **({"machine_revision": True} if machine else {})})
    events.append(rev)
    if outcome in ("accepted", "edited"):
        events.append({"type": "choice", "chosen_id": rev["id"], "candidates": [rev["id"], orig["id"]],
                       "kind": "import", "sources": {rev["id"]: "revision", orig["id"]: "original"}})
    if outcome is not None:
        events.append({"type": "critique", "message_id": orig["id"], "critique": critique, "revision_id": rev["id"],
                       "outcome": outcome})
    return events


def _message(conv: str, parent: str | None, text: str, generation: dict) -> dict:
    return {"type": "message", "id": new_id(), "conversation_id": conv, "parent_id": parent, "role": "assistant",
            "content": text, "generation": generation}


def _chain(prompt: list[dict[str, str]], generation: dict) -> tuple[list[dict], str | None, str]:
    """A new conversation's prompt turns as a chain of messages: (events, last id, conversation id)."""
    conv = new_id()
    events: list[dict] = []
    parent: str | None = None
    for turn in prompt:
        e: dict[str, Any] = {"type": "message", "id": new_id(), "conversation_id": conv, "parent_id": parent,
                             "role": turn["role"], "content": turn["content"]}
        if turn["role"] == "assistant":
            e["generation"] = dict(generation)
        events.append(e)
        parent = e["id"]
    return events, parent, conv


def row_events(fmt: str, row: dict, source: str) -> tuple[list[dict], bool]:
    """The events for one row, and whether the row counts (False: identical preference pair)."""
    if fmt == "critique":
        return _critique_events(row, source), True
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
