"""Counts of the feedback given, in total and since the last training run (``engine stats`` and the
TUI's loop panel show the same numbers).

"Since the last run" uses the newest ``home/runs/<profile>/<run-id>/manifest.json`` that has a
numeric ``log_cutoff_ts`` (the ts of the newest event that run trained on): event counts are the
events with a larger ts; row counts are the rows that exist now but did not exist in the state
replayed from the events up to the cutoff.
"""

from __future__ import annotations

import json
from typing import Any

from engine.errors import UserError
from engine.feedback.log import FeedbackLog
from engine.feedback.read_result import ReadResult
from engine.feedback.replay import State, replay, visible_events
from engine.feedback.rows import preference_rows, sft_rows, unpaired_rows
from engine.home import Home
from engine.safe_files import read_bytes

COUNT_KEYS = ("conversations", "replies", "liked", "disliked", "edited", "picked")
ROW_KEYS = ("sft_rows", "preference_rows", "unpaired_rows")


def last_run_cutoff(home: Home, profile: str) -> tuple[str, float] | None:
    """``(run_id, log_cutoff_ts)`` of the newest run whose manifest records one, else None."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return None
    for manifest in sorted(root.glob("*/manifest.json"), reverse=True):
        try:
            cutoff = json.loads(read_bytes(manifest, home).decode("utf-8")).get("log_cutoff_ts")
        except (OSError, ValueError, AttributeError, UserError, RecursionError):  # a link is never read
            continue
        if isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool):
            return manifest.parent.name, float(cutoff)
    return None


def state_counts(state: State) -> dict[str, int]:
    """Judgements as they stand now (latest wins), plus how many rows of each format they give."""
    replies = [m for m in state.messages.values() if m.role == "assistant"]
    return {
        "conversations": len(state.conversations),
        "replies": len(replies),
        "liked": sum(m.rating == 1 for m in replies),
        "disliked": sum(m.rating == -1 for m in replies),
        "edited": sum(m.edited is not None for m in replies),
        "picked": sum(m.picked for m in replies),
        "sft_rows": len(sft_rows(state)),
        "preference_rows": len(preference_rows(state)),
        "unpaired_rows": len(unpaired_rows(state)),
    }


def _row_keys(state: State) -> dict[str, set[str]]:
    return {
        "sft_rows": {r.key() for r in sft_rows(state)},
        "preference_rows": {r.key() for r in preference_rows(state)},
        "unpaired_rows": {r.key() for r in unpaired_rows(state)},
    }


def events_since(events: list[dict], cutoff: float) -> dict[str, int]:
    """Counts of the version-1 events newer than ``cutoff`` (a rating of 0 counts as neither)."""
    new = [e for e in visible_events(events)[0] if e["ts"] > cutoff]
    return {
        "conversations": sum(e["type"] == "message" and e["parent_id"] is None for e in new),
        "replies": sum(e["type"] == "message" and e["role"] == "assistant" for e in new),
        "liked": sum(e["type"] == "rating" and e["value"] == 1 for e in new),
        "disliked": sum(e["type"] == "rating" and e["value"] == -1 for e in new),
        "edited": sum(e["type"] == "edit" for e in new),
        "picked": sum(e["type"] == "choice" for e in new),
    }


def feedback_stats(home: Home, profile: str, result: ReadResult | None = None) -> dict[str, Any]:
    """Everything ``engine stats`` prints, as a dict:

    ``{"total": {...}, "since_last_run": {...} | None, "last_run": {"run_id", "log_cutoff_ts"} | None,
    "events": int, "problems": int, "future_versions": int, "warnings": [str]}``; ``total`` and
    ``since_last_run`` have the keys of :data:`COUNT_KEYS` and :data:`ROW_KEYS`. With no run yet,
    ``since_last_run`` equals ``total`` (everything is new) and ``last_run`` is None.
    """
    if result is None:
        result = FeedbackLog(home, profile).read()
    state = replay(result)
    total = state_counts(state)
    last = last_run_cutoff(home, profile)
    if last is None:
        since = dict(total)
    else:
        cutoff = last[1]
        since = events_since(result.events, cutoff)
        then = replay([e for e in result.events if e.get("ts", 0) <= cutoff])
        before, now = _row_keys(then), _row_keys(state)
        for key in ROW_KEYS:
            since[key] = len(now[key] - before[key])
    return {
        "total": total,
        "since_last_run": since,
        "last_run": None if last is None else {"run_id": last[0], "log_cutoff_ts": last[1]},
        "events": len(result.events),
        "problems": len(state.problems),
        "future_versions": result.future_versions,
        "warnings": result.warnings() + state.warnings(),
        "uncommitted_import_events": sum(state.uncommitted.values()),
    }
