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
from engine.feedback.log import FeedbackLog
from engine.feedback.log_lines import encode_event
from engine.feedback.row_formats import RowError, detect_format, row_events

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
            except (RowError, ev.InvalidEvent) as exc:
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
            raise RowError("is not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise RowError(f"is not valid JSON ({exc.msg})") from None
        except (ValueError, RecursionError):  # an int past Python's digit limit, or absurd nesting
            raise RowError("is not valid JSON (a number too long or nesting too deep)") from None
        if not isinstance(row, dict):
            raise RowError("is not a JSON object")
        if self.format is None:
            self.format = detect_format(row)
        required = {"preference": ("chosen", "rejected"), "sft": ("messages",), "unpaired": ("completion", "label"),
                    "critique": ("prompt", "original", "critique")}
        missing = [k for k in required[self.format] if k not in row]
        if missing:
            raise RowError(f"is missing {missing[0]!r} for the {self.format} format")
        return row_events(self.format, row, self.path.name)


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
