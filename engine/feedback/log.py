"""The append-only feedback log: ``home/feedback/<profile>/*.jsonl``, one event per line.

Why it is written this way:
- An append is one ``os.write`` of whole lines on an ``O_APPEND`` descriptor under an exclusive
  ``flock``, followed by ``fsync``: two TUIs on the same profile interleave whole records, never
  bytes, and a judgement the user saw acknowledged survives a power cut.
- A crash can still leave a torn last line. The next append first writes ``\\n`` so its record
  starts on a fresh line; the reader skips the torn line and reports it, never fails.
- Readers take a shared ``flock`` and only consider lines that end in ``\\n``, so a reader never sees
  a concurrent writer's half-written record as data. ``end_offsets`` records where the complete
  lines end, so a training run can freeze "the log up to here" and re-read exactly that later.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from engine.errors import UserError
from engine.feedback import events as ev
from engine.feedback.gc_pause import gc_paused
from engine.feedback.log_lines import TORN_REASON, encode_event, parse_lines
from engine.feedback.read_result import Problem, ReadResult
from engine.home import Home
from engine.safe_files import LinkRefused, open_dir

LOG_NAME = "events.jsonl"


@dataclass(frozen=True)
class Snapshot:
    """The exact bytes of the log's complete lines at one moment, for a run's frozen dataset."""

    data: bytes
    sha256: str
    end_offsets: dict[str, int]
    result: ReadResult


class FeedbackLog:
    """One profile's feedback log. Cheap to create: no I/O until used. Thread-safe; correct across
    processes (flock)."""

    def __init__(self, home: Home, profile: str) -> None:
        self.home = home
        self.profile = profile
        self.dir = home.feedback_dir(profile)
        self.path = self.dir / LOG_NAME
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._read_cache: dict[str, _FileCache] = {}  # see _read_cached
        self._read_lock = threading.Lock()

    # ----------------------------------------------------------------- writing
    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Fill in v/id/ts, validate, write one line durably; return the event as written."""
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Validate every event first, then write them all in one ``os.write`` (all or nothing)."""
        full = [ev.validate(ev.complete(e)) for e in events]
        if not full:
            return []
        self._write(b"".join(encode_event(e) for e in full))
        return full

    def _open(self) -> int:
        """The cached append descriptor, reopened if the file was removed or replaced."""
        if self._fd is not None:
            try:
                st = os.lstat(self.path)
                if (st.st_dev, st.st_ino) == self._ino:
                    return self._fd
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None
        # Reached from the home without following links (a linked folder or events.jsonl is refused).
        flags = os.O_RDWR | os.O_APPEND
        try:
            fd = self.home.open(self.path, flags, make_dirs=True)
        except FileNotFoundError:
            try:
                fd = self.home.open(self.path, flags | os.O_CREAT | os.O_EXCL, make_dirs=True)
            except FileExistsError:  # another writer created it just now
                fd = self.home.open(self.path, flags)
            else:
                dfd = open_dir(self.home.root, self.dir)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        return fd

    def _write(self, data: bytes) -> None:
        with self._lock:
            try:
                fd = self._open()
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + data  # torn tail: start this record on a fresh line
                    view = memoryview(data)
                    try:
                        while view:  # one write in practice; loop only for a short write on a full disk
                            n = os.write(fd, view)
                            view = view[n:]
                        os.fsync(fd)
                    except OSError:
                        # Full disk mid-write: cut the partial records off again so append_many stays
                        # all or nothing (we hold the exclusive lock: nobody appended since).
                        try:
                            os.ftruncate(fd, size)
                        except OSError:
                            pass
                        raise
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                raise UserError(f"cannot write the feedback log {self.path}: {exc.strerror or exc}.") from exc

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if self._fd is not None:
                os.close(self._fd)
        except Exception:
            pass

    # -------------------------------------------------------------- helpers
    def add_message(
        self,
        conversation_id: str,
        parent_id: str | None,
        role: str,
        content: str,
        generation: dict | None = None,
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "message",
            "conversation_id": conversation_id,
            "parent_id": parent_id,
            "role": role,
            "content": content,
        }
        if generation is not None:
            event["generation"] = generation
        return self.append(event)

    def rate(self, message_id: str, value: int, tags: Iterable[str] = (), comment: str | None = None) -> dict:
        return self.append(
            {"type": "rating", "message_id": message_id, "value": value, "tags": list(tags), "comment": comment}
        )

    def edit(self, message_id: str, content: str) -> dict[str, Any]:
        return self.append({"type": "edit", "message_id": message_id, "content": content})

    def choose(
        self, chosen_id: str, candidates: Iterable[str], kind: str, sources: dict[str, str] | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "choice", "chosen_id": chosen_id, "candidates": list(candidates), "kind": kind}
        if sources is not None:
            event["sources"] = dict(sources)
        return self.append(event)

    def rename(self, conversation_id: str, title: str) -> dict[str, Any]:
        return self.append({"type": "title", "conversation_id": conversation_id, "title": title})

    def critique(self, message_id: str, critique: str, revision_id: str | None, outcome: str) -> dict[str, Any]:
        """Language feedback (a version-2 event): ``critique`` of reply ``message_id`` and what became of the
        revision ``revision_id`` written for it (accepted, edited or discarded)."""
        return self.append({"type": "critique", "message_id": message_id, "critique": critique,
                            "revision_id": revision_id, "outcome": outcome})

    # ----------------------------------------------------------------- reading
    def files(self) -> list[Path]:
        """Every ``*.jsonl`` in the profile's folder, in name order; links are left out (see links())."""
        return self._listing()[0]

    def links(self) -> list[Path]:
        """``*.jsonl`` entries of the folder that are links or not regular files: never read."""
        return self._listing()[1]

    def _listing(self) -> tuple[list[Path], list[Path]]:
        try:
            dfd = open_dir(self.home.root, self.dir)  # a linked feedback folder is refused (LinkRefused)
        except (FileNotFoundError, NotADirectoryError):
            return [], []
        files, links = [], []
        try:
            with os.scandir(dfd) as it:
                for entry in it:
                    if not entry.name.endswith(".jsonl"):
                        continue
                    if entry.is_file(follow_symlinks=False):
                        files.append(self.dir / entry.name)
                    else:
                        links.append(self.dir / entry.name)
        finally:
            os.close(dfd)
        return sorted(files), sorted(links)

    def read(self, until: dict[str, int] | None = None) -> ReadResult:
        """Read every log file. ``until`` (a previous ``end_offsets``) limits each file to that byte
        offset and skips files it does not name, so a frozen view can be read again exactly."""
        return self._read(until)[0]

    def snapshot(self) -> Snapshot:
        """The complete lines of every file as one byte string (name order) with its sha256."""
        result, chunks = self._read(None, keep_bytes=True)
        data = b"".join(chunks)
        return Snapshot(data, hashlib.sha256(data).hexdigest(), dict(result.end_offsets), result)

    def snapshot_bytes(self) -> tuple[bytes, str]:
        """``(bytes, sha256)`` of the complete lines now; write them to a run dir to freeze the data."""
        snap = self.snapshot()
        return snap.data, snap.sha256

    def replay(self, until: dict[str, int] | None = None):
        """Read and replay into a :class:`engine.feedback.replay.State` (problems from both merged)."""
        from engine.feedback.replay import replay

        return replay(self.read(until))

    def _read(self, until: dict[str, int] | None, keep_bytes: bool = False) -> tuple[ReadResult, list[bytes]]:
        with gc_paused():
            return self._read_files(until, keep_bytes)

    def _read_files(self, until: dict[str, int] | None, keep_bytes: bool) -> tuple[ReadResult, list[bytes]]:
        result = ReadResult()
        chunks: list[bytes] = []
        files, links = self._listing()
        for path in links:
            result.problems.append(Problem(str(path), 0, "a symbolic link or not a regular file, not read (tuneloop "
                                                         "reads only its own files inside the home)"))
        for path in files:
            key = str(path)
            if until is not None and key not in until:
                continue
            try:
                if until is None and not keep_bytes:
                    with self._read_lock:
                        self._read_cached(path, result)
                    continue
                data = _locked_read(self.home, path, until.get(key) if until is not None else None)
            except LinkRefused as exc:
                result.problems.append(Problem(key, 0, str(exc).rstrip(".")))
                continue
            except OSError as exc:
                result.problems.append(Problem(key, 0, f"cannot read: {exc.strerror or exc}"))
                continue
            end = parse_lines(data, key, result)
            result.end_offsets[key] = end
            if keep_bytes:
                chunks.append(data[:end])
        return result, chunks

    def _read_cached(self, path: Path, result: ReadResult) -> None:
        """Parse only the bytes appended since the last read (the log is append-only); fall back to
        a full read when the file was replaced, truncated or rewritten. Events are shared with the
        cache: treat them as read-only."""
        key = str(path)
        cache = self._read_cache.get(key)
        with os.fdopen(self.home.open(path), "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                st = os.fstat(f.fileno())
                if cache is not None and not cache.still_valid(f.fileno(), st):
                    cache = None
                if cache is None:
                    cache = _FileCache(st.st_dev, st.st_ino)
                f.seek(cache.end)
                data = f.read()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        part = ReadResult()
        end = parse_lines(data, key, part, first_line=cache.lines, report_torn=False, prev_import=cache.tail_import)
        cache.extend(part, data[:end], end)
        cache.tail_import = part.tail_import_id if end else cache.tail_import
        self._read_cache[key] = cache
        result.events.extend(cache.events)
        result.problems.extend(cache.problems)
        result.future_versions += cache.future_versions
        result.end_offsets[key] = cache.end
        if data[end:].strip():
            result.problems.append(Problem(key, cache.lines + 1, TORN_REASON, after_import=cache.tail_import))


@dataclass
class _FileCache:
    """What one file held up to ``end`` (the end of its last complete line) when last read."""

    dev: int
    ino: int
    end: int = 0
    lines: int = 0
    tail: bytes = b""
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    future_versions: int = 0
    tail_import: str | None = None

    def still_valid(self, fd: int, st: os.stat_result) -> bool:
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) or st.st_size < self.end:
            return False
        return not self.tail or os.pread(fd, len(self.tail), self.end - len(self.tail)) == self.tail

    def extend(self, part: ReadResult, complete: bytes, length: int) -> None:
        self.events.extend(part.events)
        self.problems.extend(part.problems)
        self.future_versions += part.future_versions
        self.lines += complete.count(b"\n")
        self.end += length
        if complete:
            self.tail = (self.tail + complete)[-64:]


def _locked_read(home: Home, path: Path, limit: int | None) -> bytes:
    """All bytes of ``path`` (up to ``limit``) read under a shared flock, so no append is half-seen."""
    with os.fdopen(home.open(path), "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        try:
            return f.read() if limit is None else f.read(limit)
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
