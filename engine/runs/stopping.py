"""When a run must stop: a time budget (``--time-budget 6h`` / ``--until 07:00``) and SIGINT/SIGTERM.

Both only set a deadline or a flag; the trainer callback polls them at step ends, saves a checkpoint
and stops, so a stop never leaves a half-written file. Re-exported by engine.runs.
"""

from __future__ import annotations

import datetime as _dt
import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from engine.errors import UserError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([hms])")


def parse_duration(text: str) -> float:
    """``6h``, ``90m``, ``30s``, ``1h30m`` -> seconds."""
    s = text.strip().lower()
    parts = _DURATION_PART.findall(s)
    if not s or not parts or _DURATION_PART.sub("", s).strip():
        raise UserError(f"--time-budget {text!r} is not a duration; write it like 6h, 90m, 30s or 1h30m.")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise UserError(f"--time-budget {text!r} must be longer than zero.")
    return seconds


def parse_until(text: str, now: float | None = None) -> float:
    """``07:00`` (24-hour local time) -> the unix time of its next occurrence."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise UserError(f"--until {text!r} is not a time of day; write it like 07:00 (24-hour, local time).")
    now_dt = _dt.datetime.fromtimestamp(time.time() if now is None else now)
    target = now_dt.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
    if target <= now_dt:
        target += _dt.timedelta(days=1)
    return target.timestamp()


@dataclass
class Deadline:
    """When training must stop (None: no budget). ``started`` is when the budget began to count."""

    at: float | None = None
    started: float = field(default_factory=time.time)
    label: str = ""

    @classmethod
    def from_options(cls, time_budget: str | None, until: str | None, now: float | None = None) -> "Deadline":
        now = time.time() if now is None else now
        ends = []
        labels = []
        if time_budget:
            ends.append(now + parse_duration(time_budget))
            labels.append(f"budget {time_budget}")
        if until:
            ends.append(parse_until(until, now))
            labels.append(f"until {until.strip()}")
        if not ends:
            return cls(None, now, "")
        return cls(min(ends), now, " and ".join(labels))

    def remaining(self, now: float | None = None) -> float | None:
        if self.at is None:
            return None
        return self.at - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        r = self.remaining(now)
        return r is not None and r <= 0

    @property
    def total(self) -> float | None:
        return None if self.at is None else self.at - self.started


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag the training loop polls (it saves a checkpoint and stops).

    A second SIGINT while stopping raises KeyboardInterrupt, so a user can still force their way out.
    Use as a context manager; the previous handlers come back on exit. Outside the main thread
    (tests, the TUI) signals cannot be caught and the flag can be set with ``request``.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, name: str = "request") -> None:
        self.signal_name = name

    def _handle(self, signum, _frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
