"""Freeze the feedback log's training rows into a run directory and split them by conversation.

A run trains on ``run_dir/data/*.jsonl`` only, never on the live log, so it is reproducible and a
resume sees the same rows: the files' fingerprint goes into the manifest and is checked again.
The held-out slice is whole conversations (rows of one conversation share wording, so splitting
rows would leak), chosen by a seeded shuffle of the sorted conversation ids: deterministic.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from engine.home import ensure_dir, write_private
from engine.train import runs

KINDS = ("sft", "pref", "kto")
"""Row kinds: ``sft`` (messages), ``pref`` (prompt/chosen/rejected), ``kto`` (prompt/completion/label)."""


@dataclass
class Rows:
    """Every kind of row, with the conversation each came from."""

    sft: list = field(default_factory=list)
    pref: list = field(default_factory=list)
    kto: list = field(default_factory=list)

    def of(self, kind: str) -> list:
        return getattr(self, kind)

    def counts(self) -> dict[str, int]:
        out = {k: len(self.of(k)) for k in KINDS}
        out["kto_desirable"] = sum(1 for r in self.kto if _data(r).get("label"))
        out["kto_undesirable"] = out["kto"] - out["kto_desirable"]
        return out

    def conversations(self) -> list[str]:
        ids = {_conv(r) for k in KINDS for r in self.of(k)}
        return sorted(i for i in ids if i is not None)


def _data(row) -> dict:
    return row.data if hasattr(row, "data") else row


def _conv(row) -> str | None:
    return getattr(row, "conversation_id", None)


@dataclass
class Snapshot:
    """The rows of the log right now, plus what the manifest needs to name the exact log bytes."""

    rows: Rows
    log_sha256: str
    log_offsets: dict[str, int]
    log_cutoff_ts: float | None
    warnings: list[str]


def collect(home, profile: str) -> Snapshot:
    """Read the profile's log once (exact bytes) and turn it into training rows."""
    from engine.feedback import FeedbackLog
    from engine.feedback import rows as feedback_rows
    from engine.feedback.replay import replay

    log = FeedbackLog(home, profile)
    snap = log.snapshot()
    state = replay(snap.result)
    rows = Rows(sft=list(feedback_rows.sft_rows(state)), pref=list(feedback_rows.preference_rows(state)),
                kto=list(feedback_rows.unpaired_rows(state)))
    return Snapshot(rows, snap.sha256, dict(snap.end_offsets), snap.result.cutoff_ts, snap.result.warnings())


@dataclass
class Split:
    """Which conversations are held out, and whether evaluation has to fall back to the training rows."""

    eval_conversations: list[str]
    eval_on_train: bool
    note: str


def split_conversations(conversations: list[str], fraction: float, seed: int) -> Split:
    """Hold out ``fraction`` of the conversations (at least one when there are two or more)."""
    convs = sorted(conversations)
    if len(convs) < 2:
        return Split([], True, f"only {len(convs)} conversation: nothing to hold out, so the gate evaluates on "
                                "the training rows (it cannot detect overfitting).")
    order = convs[:]
    random.Random(seed).shuffle(order)
    k = min(len(convs) - 1, max(1, round(fraction * len(convs))))
    held = sorted(order[:k])
    return Split(held, False, f"{k} of {len(convs)} conversations held out for the gate (seed {seed}).")


def write_split(data_dir: Path, rows: Rows, split: Split) -> dict[str, dict[str, int]]:
    """Write ``<kind>.train.jsonl`` / ``<kind>.eval.jsonl`` (TRL format only) and ``split.json``."""
    ensure_dir(data_dir)
    held = set(split.eval_conversations)
    counts: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        train = [_data(r) for r in rows.of(kind) if _conv(r) not in held]
        evaluation = [_data(r) for r in rows.of(kind) if _conv(r) in held]
        for part, items in (("train", train), ("eval", evaluation)):
            write_private(data_dir / f"{kind}.{part}.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n"
                                                                   for x in items))
        counts[kind] = {"train": len(train), "eval": len(evaluation)}
    runs.write_json(data_dir / "split.json", {"eval_conversations": split.eval_conversations,
                                              "eval_on_train": split.eval_on_train, "note": split.note})
    return counts


def read_rows(data_dir: Path, kind: str, part: str) -> list[dict]:
    """Frozen rows of one kind; ``part`` is ``train`` or ``eval`` (``eval`` falls back to ``train`` when the
    run had a single conversation, as recorded in split.json)."""
    if part == "eval":
        split = runs.read_json(Path(data_dir) / "split.json")
        if split.get("eval_on_train"):
            part = "train"
    return runs.read_jsonl(Path(data_dir) / f"{kind}.{part}.jsonl")


def fingerprint(data_dir: Path) -> str:
    return runs.fingerprint_dir(data_dir, "*.jsonl")
