"""What reading the feedback log found: its events in order, the lines it skipped and why, and where
each file's complete lines end. Its own module so that the reader (log.py) and replay (replay.py) share
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHA_PREFIX = 20
"""An import id begins with this many hex digits of its file's sha256 (the rest is random), so a stopped import
is recognised once the same file was imported again (engine.feedback.import_rows)."""


@dataclass(frozen=True)
class Problem:
    """A line (or event) that was skipped, with why. ``line`` is 1-based; 0 when not tied to a line."""

    path: str
    line: int
    reason: str
    after_import: str | None = None
    """For a line cut off mid-write: the ``import_id`` of the event on the line before it, when that was an
    imported event (a killed ``engine import`` tears its last batch). Once that file is imported again and
    committed, the line is no longer worth a warning (see :meth:`ReadResult.warnings`)."""

    def __str__(self) -> str:
        return f"{Path(self.path).name}:{self.line}: {self.reason}" if self.line else f"{self.path}: {self.reason}"


@dataclass
class ReadResult:
    """What :meth:`FeedbackLog.read` found. ``events`` are in log order (file name order, then line
    order), future-version events included (replay ignores them)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    future_versions: int = 0
    end_offsets: dict[str, int] = field(default_factory=dict)
    """Per file path: byte offset just after its last complete (newline-terminated) line."""
    tail_import_id: str | None = None
    """The ``import_id`` of the event on the last line parsed (None: not an imported event)."""

    def superseded_imports(self) -> set[str]:
        """Import ids that never committed but whose file was imported again and committed since: what they left
        behind (invisible events, a torn last batch line) is not worth a warning any more."""
        committed = {e.get("import_id") for e in self.events if e.get("type") == "import"}
        shas = {e["sha256"][:SHA_PREFIX] for e in self.events
                if e.get("type") == "import" and isinstance(e.get("sha256"), str)}
        tags = {p.after_import for p in self.problems if p.after_import}
        return {t for t in tags if t not in committed and t[:SHA_PREFIX] in shas}

    def warnings(self) -> list[str]:
        """One-line warnings for a user: skipped lines (count and the first few) and newer events."""
        out = []
        done = self.superseded_imports()
        problems = [p for p in self.problems if p.after_import is None or p.after_import not in done]
        if problems:
            first = ", ".join(f"{Path(p.path).name}:{p.line}" for p in problems[:3])
            more = "" if len(problems) <= 3 else f" and {len(problems) - 3} more"
            out.append(
                f"{len(problems)} unreadable feedback line(s) skipped ({first}{more}): "
                f"{problems[0].reason}."
            )
        if self.future_versions:
            out.append(
                f"{self.future_versions} feedback event(s) come from a newer tuneloop and are ignored; "
                "upgrade to use them."
            )
        return out

    @property
    def cutoff_ts(self) -> float | None:
        """The newest ``ts`` among the events (what a training run records as ``log_cutoff_ts``)."""
        stamps = [e["ts"] for e in self.events if isinstance(e.get("ts"), (int, float))]
        return max(stamps) if stamps else None
