"""Replies as Markdown that shows every character and line break the model wrote.

A model's reply is drawn as Markdown (code blocks, lists, emphasis help), but plain Markdown drops
things a person must see: a single line break becomes a space (a haiku turns into one line), a
backslash before punctuation vanishes (``\\[x\\]`` shows as ``[x]``), ``&amp;`` turns into ``&``, HTML
tags disappear, and a reply of just ``+`` or ``1.`` is an empty list item (blank). :func:`faithful`
rewrites the source so the renderer shows the text as written: outside code, every line break is a
hard break, backslashes, ``&`` and ``<`` are escaped, and a line holding only a list marker or ``#``
is escaped; fenced and indented code, and inline code spans, are left exactly as they are.

Used for finished replies and, with ``final=False``, for a reply still streaming: then the last line
(still being written) is not treated as a lone marker yet, so the rewritten text only grows at its
end as the reply grows (the streaming widget appends instead of re-rendering).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LONE_MARKER = re.compile(r"^(\s*)([-+*]|\d{1,9}[.)]|#{1,6})(\s*)$")
_ESCAPE = {"\\": "\\\\", "&": "\\&", "<": "\\<"}
_SPECIAL = re.compile(r"[\\&<]")


def faithful(text: str, final: bool = True) -> str:
    """``text`` as Markdown source that renders every character and line break of it (see the module)."""
    lines = text.split("\n")
    out: list[str] = []
    code: list[bool] = []  # per line: code (its line break is kept as it is)
    fence: tuple[str, int] | None = None  # (character, length) of the open code fence
    prev_blank, in_indented = True, False
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if fence is not None:  # inside a fenced code block: verbatim, until the closing fence
            m = _FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= fence[1] and not line[m.end():].strip():
                fence = None
            out.append(line)
            code.append(True)
            continue
        m = _FENCE.match(line)
        if m:
            fence = (m.group(1)[0], len(m.group(1)))
            out.append(line)
            code.append(True)
            prev_blank, in_indented = False, False
            continue
        blank = not line.strip()
        indented = line.startswith(("    ", "\t")) and not blank
        in_indented = indented and (prev_blank or in_indented)
        prev_blank = blank
        if in_indented or blank:  # indented code is verbatim; a blank line ends a paragraph anyway
            out.append(line)
            code.append(True)
            continue
        lone = _LONE_MARKER.match(line)
        if lone and (final or not last):
            indent, marker, rest = lone.groups()
            out.append(f"{indent}{marker[:-1]}\\{marker[-1]}{rest}")
        else:
            out.append(_escape_inline(line))
        code.append(False)
    # a hard break ("  " before the newline) after each line of text keeps the model's line break (before
    # a blank line or a fence it changes nothing: a hard break at the end of a block is dropped)
    return "".join(line + ("" if i == len(out) - 1 else "\n" if code[i] else "  \n")
                   for i, line in enumerate(out))


def _escape_inline(line: str) -> str:
    """Escape backslash, ``&`` and ``<`` outside inline code spans (a span needs its closing run on the line)."""
    if "`" not in line:
        return _SPECIAL.sub(lambda m: _ESCAPE[m.group(0)], line)
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "`":
            j = i
            while j < n and line[j] == "`":
                j += 1
            run = line[i:j]
            close = _closing_run(line, j, len(run))
            if close < 0:  # no closing run: the backticks are literal text
                out.append(run)
                i = j
                continue
            out.append(line[i:close + len(run)])  # the whole span, verbatim
            i = close + len(run)
            continue
        if ch == "\\" and i + 1 < n and line[i + 1] == "`":
            out.append("\\\\\\`")  # a backslash, then a literal backtick (it opens no code span)
            i += 2
            continue
        out.append(_ESCAPE.get(ch, ch))
        i += 1
    return "".join(out)


def _closing_run(line: str, start: int, length: int) -> int:
    """Where a run of exactly ``length`` backticks starts at or after ``start``, else -1."""
    i, n = start, len(line)
    while i < n:
        if line[i] == "`":
            j = i
            while j < n and line[j] == "`":
                j += 1
            if j - i == length:
                return i
            i = j
        else:
            i += 1
    return -1
