"""Import TRL-format JSONL into a profile's feedback log, as conversations with judgements.

Accepted rows (``--format auto`` decides per file from the first row's keys):
- preference: ``prompt``/``chosen``/``rejected``, conversational (lists of messages) or standard
  (plain strings); with an implicit prompt (no ``prompt`` key) the prompt is the shared prefix of
  ``chosen`` and ``rejected`` (messages, or characters for plain text, as TRL's ``extract_prompt``).
- sft: conversational ``messages``; the last turn must be the assistant's and is the liked reply.
- unpaired: ``prompt``/``completion``/``label`` (label true or false).
- critique: language feedback as ``engine export -f critique`` writes it (engine.feedback.language.CRITIQUE_FORMAT):
  the original reply, and the revision as its sibling whose generation record names the critique; an accepted
  or edited revision gets a ``choice`` (kind ``import``) over the original, every outcome its ``critique``
  event; a critique without a revision becomes a 👎 on the original with the critique as its comment.
Each row becomes a new conversation: the prompt's turns as a chain of messages, then the reply or
replies. A preference pair is two assistant siblings, a ``choice`` of kind ``import`` of the chosen
one, and ratings +1 (chosen) and -1 (rejected); an sft reply is rated +1; an unpaired reply is
rated +1 or -1 by its label. A leading system turn becomes the replies' generation record's
``system_prompt``; every imported assistant turn's generation record is
``{"imported": <file name>, "system_prompt": ...}``. So exporting the imported rows gives them back.

An import is a transaction (see :func:`import_file`): the file is streamed twice (validate, then
write in batches), so memory stays bounded; a bad file raises one UserError naming ``file:line`` and
leaves the log untouched; a kill mid-import leaves events that replay ignores until a commit record
exists (it never will: import again); the same file twice needs ``--again``. Only regular files up
to 1 GiB with rows up to 16 MiB are read (a FIFO or ``/dev/zero`` is refused at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from engine.errors import UserError
from engine.feedback import events as ev
from engine.feedback.events import ROLES, new_id
from engine.feedback.log import FeedbackLog, encode_event

FORMATS = ("auto", "preference", "sft", "unpaired", "critique")


@dataclass
class ImportResult:
    format: str
    rows: int
    """Rows that became conversations."""
    skipped: int
    """Preference rows whose chosen and rejected texts were identical (nothing to learn; not imported)."""
    events: int
    sha256: str = ""
    """The file's sha256 (recorded in the commit record: a second import of it is refused without --again)."""
    import_id: str = ""


class _RowError(Exception):
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
    raise _RowError(
        "cannot tell the format: expected 'messages' (sft), 'chosen'+'rejected' (preference) "
        "'prompt'+'completion'+'label' (unpaired) or 'original'+'critique' (critique)"
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
    if isinstance(chosen, str) != isinstance(rejected, str) or isinstance(chosen, list) != isinstance(rejected, list):
        # refused, not normalised: which of the two a mixed row meant is a guess
        raise _RowError(f"'chosen' is {_kind(chosen)} but 'rejected' is {_kind(rejected)}: use one format for both "
                        "(two strings, or two lists of messages)")
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
    return _text_pair(chosen, rejected)


def _text_pair(chosen: str, rejected: str) -> tuple[str, list, list[str]]:
    i = _text_prefix(chosen, rejected)
    if i == 0:
        raise _RowError("has no 'prompt', and 'chosen' and 'rejected' share no prefix to use as one")
    return "", [{"role": "user", "content": chosen[:i]}], [chosen[i:], rejected[i:]]


def _kind(value: Any) -> str:
    return "a string" if isinstance(value, str) else "a list of messages" if isinstance(value, list) else \
        f"a JSON {type(value).__name__}"


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


def _parse_critique(row: dict) -> tuple[str, list, str, str, str | None, str | None]:
    system, turns = _prompt(row.get("prompt"))
    critique = row["critique"]
    if not isinstance(critique, str) or not critique.strip():
        raise _RowError("'critique' must be a non-empty string")
    revision = row.get("revision")
    revision = None if revision is None else _reply(revision, "revision")
    outcome = row.get("outcome")
    if outcome not in (None, *ev.CRITIQUE_OUTCOMES):
        raise _RowError(f"'outcome' must be one of {', '.join(ev.CRITIQUE_OUTCOMES)} or null, not {outcome!r:.40}")
    if revision is None and outcome is not None:
        raise _RowError("has an 'outcome' but no 'revision'")
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


def _row_events(fmt: str, row: dict, source: str) -> tuple[list[dict], bool]:
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


MAX_FILE_BYTES = 1024 * 1024 * 1024
"""An import file larger than this (1 GiB) is refused: split it."""
MAX_LINE_BYTES = ev.MAX_LINE_BYTES
"""A row longer than this (16 MiB, the log's own line limit) is refused."""
BATCH_ROWS = 2000
"""Rows per append (one write + fsync each); memory stays bounded by one batch whatever the file size."""
CAPS = f"imports are capped at {MAX_FILE_BYTES // 2**30} GiB per file and {MAX_LINE_BYTES // 2**20} MiB per row"


def _open_regular(path: Path) -> int:
    """A descriptor of ``path`` if it is a regular file within the caps; a FIFO, a device (``/dev/zero``)
    or a folder is refused without blocking on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}.") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UserError(f"{path} is not a regular file (a pipe, device or folder); import reads only JSONL files "
                        "on disk (nothing was imported).")
    if st.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise UserError(f"{path} is {st.st_size / 2**30:.1f} GiB and {CAPS}; split it into smaller files "
                        "(nothing was imported).")
    os.set_blocking(fd, True)
    return fd


def _lines(f, path: Path, digest) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of a file, streamed; every byte goes through ``digest``."""
    lineno = 0
    total = 0
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        digest.update(raw)
        total += len(raw)
        lineno += 1
        if len(raw) > MAX_LINE_BYTES:
            raise UserError(f"{path}:{lineno} is longer than {MAX_LINE_BYTES // 2**20} MiB and {CAPS}; shorten that "
                            "row (nothing was imported).")
        if total > MAX_FILE_BYTES:
            raise UserError(f"{path} grew past {MAX_FILE_BYTES // 2**30} GiB while being read and {CAPS}; split it "
                            "(nothing was imported).")
        yield lineno, raw


class _Rows:
    """One pass over the file: each useful row's events (fresh ids), checked to be writable."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.format: Any = None if fmt == "auto" else fmt  # str once the first row is read
        self.rows = self.skipped = self.events = 0
        self.sha256 = ""

    def __call__(self, f) -> Iterator[list[dict]]:
        digest = hashlib.sha256()
        for lineno, raw in _lines(f, self.path, digest):
            if not raw.strip():
                continue
            where = f"{self.path}:{lineno}"
            try:
                row_events, useful = self._row(raw)
                for e in row_events:  # writable as the log will write it (no lone surrogates)
                    encode_event(ev.validate(ev.complete(e)))
            except (_RowError, ev.InvalidEvent) as exc:
                reason = str(exc).rstrip(".")
                raise UserError(f"{where}: {reason}; fix that line and import again (nothing was imported).") from None
            if useful:
                self.rows += 1
                self.events += len(row_events)
                yield row_events
            else:
                self.skipped += 1
        self.sha256 = digest.hexdigest()
        if self.format is None:
            raise UserError(f"{self.path} has no rows to import.")

    def _row(self, raw: bytes) -> tuple[list[dict], bool]:
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
        if self.format is None:
            self.format = detect_format(row)
        required = {"preference": ("chosen", "rejected"), "sft": ("messages",), "unpaired": ("completion", "label"),
                    "critique": ("prompt", "original", "critique")}
        missing = [k for k in required[self.format] if k not in row]
        if missing:
            raise _RowError(f"is missing {missing[0]!r} for the {self.format} format")
        return _row_events(self.format, row, self.path.name)


def plan_import(path: Path, fmt: str = "auto") -> tuple[list[dict], ImportResult]:
    """Parse and validate the whole file; return the events to append (nothing is written). Holds every
    event in memory: for tests and small files; :func:`import_file` streams."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r}: use auto, preference, sft, unpaired or critique.")
    rows = _Rows(path, fmt)
    with os.fdopen(_open_regular(path), "rb") as f:
        events = [e for batch in rows(f) for e in batch]
    return events, ImportResult(rows.format, rows.rows, rows.skipped, rows.events, rows.sha256)


@contextlib.contextmanager
def _import_lock(log: FeedbackLog):
    """An exclusive ``flock`` on ``feedback/<profile>/.import.lock`` (reached without following links): one
    import of a profile at a time; the kernel drops it when the process dies."""
    fd = log.home.open(log.dir / ".import.lock", os.O_RDWR | os.O_CREAT, make_dirs=True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def previous_imports(log: FeedbackLog, sha256: str) -> list[dict]:
    """Commit records of earlier imports of a file with this sha256."""
    return [e for e in log.read().events
            if e.get("type") == "import" and e.get("v") == ev.version_of("import") and e.get("sha256") == sha256]


def import_file(log: FeedbackLog, path: Path, fmt: str = "auto", again: bool = False) -> ImportResult:
    """Import ``path`` as one transaction: validate the whole file (pass 1, streamed, nothing written), then
    append its events in batches tagged with one ``import_id`` (pass 2) and finally the ``import`` commit
    record that makes them visible. A kill before the commit leaves invisible events (reported as an
    unfinished import); a file whose sha256 an earlier commit recorded is refused unless ``again``."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r}: use auto, preference, sft, unpaired or critique.")
    with os.fdopen(_open_regular(path), "rb") as f, _import_lock(log):
        check = _Rows(path, fmt)
        for _batch in check(f):
            pass
        # The profile's import lock is held from here to the commit record: two imports of the same file
        # started together cannot both pass this check.
        if not again:
            earlier = previous_imports(log, check.sha256)
            if earlier:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(earlier[-1]["ts"]))
                raise UserError(f"{path} was already imported into profile {log.profile!r} on {when} "
                                f"({earlier[-1]['rows']} rows); importing it again would duplicate them, so pass "
                                "--again if that is what you want (nothing was imported).")
        f.seek(0)
        from engine.feedback.replay import SHA_PREFIX

        import_id = check.sha256[:SHA_PREFIX] + ev.new_id()[SHA_PREFIX:]
        write = _Rows(path, check.format)
        batch: list[dict] = []
        rows_in_batch = 0
        for row_events in write(f):
            for e in row_events:
                e[ev.IMPORT_KEY] = import_id
            batch.extend(row_events)
            rows_in_batch += 1
            if rows_in_batch >= BATCH_ROWS:
                log.append_many(batch)
                batch, rows_in_batch = [], 0
        log.append_many(batch)
        if write.sha256 != check.sha256:
            raise UserError(f"{path} changed while it was being imported; the partial import stays invisible "
                            "(import it again).")
        log.append({"type": "import", "import_id": import_id, "events": write.events, "rows": write.rows,
                    "skipped": write.skipped, "sha256": write.sha256, "file": path.name, "format": write.format})
    return ImportResult(write.format, write.rows, write.skipped, write.events, write.sha256, import_id)
