"""What reading the feedback log found: its events in order, the lines it skipped and why, and where
each file's complete lines end. Its own module so that the reader (log.py) and replay (replay.py) share
it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A line (or event) that was skipped, with why. ``line`` is 1-based; 0 when not tied to a line."""

    path: str
    line: int
    reason: str

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

    def warnings(self) -> list[str]:
        """One-line warnings for a user: skipped lines (count and the first few) and newer events."""
        out = []
        if self.problems:
            first = ", ".join(f"{Path(p.path).name}:{p.line}" for p in self.problems[:3])
            more = "" if len(self.problems) <= 3 else f" and {len(self.problems) - 3} more"
            out.append(
                f"{len(self.problems)} unreadable feedback line(s) skipped ({first}{more}): "
                f"{self.problems[0].reason}."
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
