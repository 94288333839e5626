"""The log's lines: one event encoded as one JSON line (checked by its schema first, engine.feedback.events), and
lines parsed back into a ReadResult that skips and reports what it cannot use (a torn last line, a damaged
record) instead of failing."""

from __future__ import annotations

import json
from typing import Any

from engine.feedback import events as ev
from engine.feedback.read_result import Problem, ReadResult

TORN_REASON = "torn last line (incomplete write), skipped"


_TORN_LIKE = (TORN_REASON, "not valid JSON", "not UTF-8")
"""What a line cut off mid-write reads as (later closed off by the next append's newline)."""


def encode_event(event: dict[str, Any]) -> bytes:
    """One log line for a validated event; InvalidEvent (one sentence) if it cannot be written as UTF-8
    (a lone surrogate from a JSON ``\\ud800`` escape) or is over the line limit."""
    try:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end] if isinstance(exc.object, str) else "?"
        raise ev.InvalidEvent(
            f"feedback event {event.get('type')!r} holds text that is not valid Unicode (a lone surrogate "
            f"{bad.encode('unicode_escape').decode()!s}); fix that text and try again."
        ) from None
    if len(line) > ev.MAX_LINE_BYTES:
        raise ev.InvalidEvent(
            f"feedback event {event['type']!r} is {len(line)} bytes, over the "
            f"{ev.MAX_LINE_BYTES // (1024 * 1024)} MiB limit; shorten its text."
        )
    return line




def parse_lines(data: bytes, path: str, result: ReadResult, first_line: int = 0, report_torn: bool = True,
                prev_import: str | None = None) -> int:
    """Parse the complete lines of ``data`` into ``result``; return the offset after the last one.

    A trailing fragment without ``\\n`` is a torn record (a crash mid-append) and is reported. A cut-off line
    right after an imported event is tagged with that import (Problem.after_import); ``prev_import`` is the
    import id of the line before ``data`` and ``result.tail_import_id`` that of its last line.
    """
    end = data.rfind(b"\n") + 1
    lineno = first_line
    start = 0
    while start < end:
        stop = data.index(b"\n", start)
        lineno += 1
        raw = data[start:stop]
        start = stop + 1
        if not raw.strip():
            continue
        n_events, n_problems = len(result.events), len(result.problems)
        _parse_one(raw, path, lineno, result)
        if len(result.events) > n_events:
            iid = result.events[-1].get(ev.IMPORT_KEY)
            prev_import = iid if isinstance(iid, str) else None
        elif len(result.problems) > n_problems:
            if prev_import and result.problems[-1].reason in _TORN_LIKE:
                p = result.problems[-1]
                result.problems[-1] = Problem(p.path, p.line, p.reason, after_import=prev_import)
            prev_import = None
    if report_torn and end < len(data) and data[end:].strip():
        result.problems.append(Problem(path, lineno + 1, TORN_REASON, after_import=prev_import))
    result.tail_import_id = prev_import
    return end


def parse_bytes(data: bytes, path: str = "snapshot.jsonl") -> ReadResult:
    """Parse a frozen snapshot (e.g. a run's ``data/events.jsonl``) exactly as the log reader would."""
    result = ReadResult()
    result.end_offsets[path] = parse_lines(data, path, result)
    return result


def _parse_one(raw: bytes, path: str, lineno: int, result: ReadResult) -> None:
    if len(raw) > ev.MAX_LINE_BYTES:
        result.problems.append(Problem(path, lineno, f"line longer than {ev.MAX_LINE_BYTES} bytes"))
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        result.problems.append(Problem(path, lineno, "not UTF-8"))
        return
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, or an int past Python's digit limit
        result.problems.append(Problem(path, lineno, "not valid JSON"))
        return
    if not isinstance(obj, dict):
        result.problems.append(Problem(path, lineno, "not a JSON object"))
        return
    v = obj.get("v")
    if (isinstance(v, int) and not isinstance(v, bool) and v > ev.SCHEMA_VERSION):
        result.future_versions += 1
        result.events.append(obj)
        return
    try:
        ev.validate(obj)
    except ev.InvalidEvent as exc:
        result.problems.append(Problem(path, lineno, str(exc).rstrip(".")))
        return
    result.events.append(obj)
