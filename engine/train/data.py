"""Freeze the feedback log's training rows into a run directory and split them by conversation.

A run trains on ``run_dir/data/*.jsonl`` only, never on the live log, so it is reproducible and a
resume sees the same rows: the files' fingerprint goes into the manifest and is checked again.
The held-out slice is whole conversations (rows of one conversation share wording, so splitting
rows would leak), chosen by a seeded shuffle of the sorted conversation ids: deterministic.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from engine import runs
from engine.errors import UserError
from engine.safe_files import LinkRefused, ensure_dir, write_private

FEEDBACK_KINDS = ("sft", "pref", "kto")
"""Rows that judge a reply: ``sft`` (messages), ``pref`` (prompt/chosen/rejected), ``kto`` (prompt/completion/label)."""
KINDS = (*FEEDBACK_KINDS, "prompt")
"""Every row kind a run freezes; ``prompt`` (prompt only) is what RL samples replies to (engine.train.methods)."""


@dataclass
class Rows:
    """Every kind of row, with the conversation each came from."""

    sft: list = field(default_factory=list)
    pref: list = field(default_factory=list)
    kto: list = field(default_factory=list)
    prompt: list = field(default_factory=list)
    """Every prompt of the person's conversations (judged or not), once each: what RL samples replies to."""
    edits: int = 0
    """Replies the user corrected (each gives an SFT row, a pair and a liked/disliked unpaired row)."""

    def of(self, kind: str) -> list:
        return getattr(self, kind)

    def counts(self) -> dict[str, int]:
        out = {k: len(self.of(k)) for k in KINDS}
        out["kto_desirable"] = sum(1 for r in self.kto if row_data(r).get("label"))
        out["kto_undesirable"] = out["kto"] - out["kto_desirable"]
        out["edits"] = self.edits
        for kind in ("sft", "pref"):  # language feedback (engine.feedback.language), counted by where it came from
            for source in ("revision", "machine_revision"):
                if n := sum(1 for r in self.of(kind) if getattr(r, "source", None) == source):
                    out[f"{source}_{kind}"] = n
        return out

    def conversations(self) -> list[str]:
        ids = {_conv(r) for k in FEEDBACK_KINDS for r in self.of(k)}
        return sorted(i for i in ids if i is not None)


def row_data(row) -> dict:
    """A frozen row's dict, from a feedback row (``.data``) or the dict itself."""
    return row.data if hasattr(row, "data") else row


def _conv(row) -> str | None:
    return getattr(row, "conversation_id", None)


@dataclass
class Collected:
    """The rows of the log right now, plus what the manifest needs to name the exact log bytes."""

    rows: Rows
    log_sha256: str
    log_offsets: dict[str, int]
    log_cutoff_ts: float | None
    warnings: list[str]
    state: object = None
    """The replayed log the rows came from (engine.train.revise revises its unrevised critiques)."""


def collect(home, profile: str) -> Collected:
    """Read the profile's log once (exact bytes) and turn it into training rows."""
    from engine.feedback import FeedbackLog
    from engine.feedback import rows as feedback_rows
    from engine.feedback.replay import replay

    log = FeedbackLog(home, profile)
    snap = log.snapshot()
    state = replay(snap.result)
    rows = Rows(sft=list(feedback_rows.sft_rows(state)), pref=list(feedback_rows.preference_rows(state)),
                kto=list(feedback_rows.unpaired_rows(state)), prompt=list(feedback_rows.prompt_rows(state)),
                edits=sum(1 for m in state.messages.values() if m.role == "assistant" and m.edited is not None))
    return Collected(rows, snap.sha256, dict(snap.end_offsets), snap.result.cutoff_ts, snap.result.warnings(), state)


def in_context(rows: Rows, system_prompt: str | None) -> int:
    """Give every row whose conversation has no system message the profile's ``system_prompt`` first, as the
    chat and ``engine generate`` send it: a row is trained in the context it will be asked in (imported rows
    without one learned a fact the model then did not give under the system prompt). Returns how many
    conversations' rows got it (each conversation gives rows of several kinds). Applied before row keys are taken,
    so the rows of earlier runs match themselves again."""
    if not system_prompt:
        return 0
    import dataclasses

    system = {"role": "system", "content": system_prompt}
    added: set = set()
    for kind in KINDS:
        items = rows.of(kind)
        for i, row in enumerate(items):
            d = row_data(row)
            field_name = "messages" if "messages" in d else "prompt"
            turns = d.get(field_name)
            if not isinstance(turns, list) or not turns or any(
                    isinstance(t, dict) and t.get("role") == "system" for t in turns):
                continue
            new = {**d, field_name: [system, *turns]}
            items[i] = dataclasses.replace(row, data=new) if hasattr(row, "data") else new
            added.add(_conv(row) or id(row))
    return len(added)


@dataclass
class Split:
    """Which conversations are held out, and whether evaluation has to fall back to the training rows."""

    eval_conversations: list[str]
    eval_on_train: bool
    note: str
    eval_keys: list[str] | None = None
    """When set, exactly these rows (``row_key``) are held out, not every row of the held conversations."""


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


def row_key(kind: str, row) -> str:
    """A row's identity: its kind and its exact TRL content (an edited reply is a new row)."""
    text = json.dumps([kind, row_data(row)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def nothing_new(rows: Rows, seen: set[str], kinds: tuple[str, ...] = KINDS) -> bool:
    return all(row_key(kind, r) in seen for kind in kinds for r in rows.of(kind))


def split_new_feedback(rows: Rows, seen: set[str], fraction: float, seed: int,
                       current: str | None = None, kinds: tuple[str, ...] = KINDS, refit: bool = True) -> Split:
    """The gate's held-out slice, drawn only from rows the adapter in use never trained on.

    ``seen`` holds the row keys the adapter in use (and the adapters it continued) trained on; the
    rest of the rows of ``kinds`` (those this run's methods train on) is the new feedback. A seeded ``fraction`` of the new feedback's conversations is held out
    (at least one); only their new rows are evaluation rows, so neither the adapter in use (by
    construction) nor this run's candidate (by the split) has trained on any of them. After the gate,
    the promoted adapter is trained again on everything (see engine.train.finetune), so no feedback
    is ever kept out of the adapter in use.
    """
    who = f"adapter {current}" if current else "the base model"
    new = [(kind, r) for kind in kinds for r in rows.of(kind) if row_key(kind, r) not in seen]
    if not new:
        raise UserError(f"there is no feedback that {who} has not already learned; give feedback in the chat "
                        "first (or start over with `engine adapters use base`).")
    convs = sorted({c for _, r in new if (c := _conv(r)) is not None})
    old_rows = sum(len(rows.of(kind)) for kind in kinds) - len(new)
    if len(convs) < 2 and old_rows == 0:
        return Split([], True, f"only {len(convs)} conversation of new feedback and nothing else: nothing to hold "
                               "out, so the gate evaluates on the training rows (it cannot detect overfitting).")
    order = convs[:]
    random.Random(seed).shuffle(order)
    k = 1 if len(convs) < 2 else min(len(convs) - 1, max(1, round(fraction * len(convs))))
    held = sorted(order[:k])
    keys = sorted(row_key(kind, r) for kind, r in new if _conv(r) in set(held))
    return Split(held, False, f"{k} of {len(convs)} conversations with feedback new to {who} held out for the "
                              f"gate (seed {seed}); " + ("the promoted adapter is then trained on them too." if refit
                                                        else "RL does not train on them: the next run can judge "
                                                             "on them."), keys)


def write_split(data_dir: Path, rows: Rows, split: Split) -> dict[str, dict[str, int]]:
    """Write ``<kind>.train.jsonl`` / ``<kind>.eval.jsonl`` (TRL format only) and ``split.json``."""
    ensure_dir(data_dir)
    held = set(split.eval_conversations)
    held_keys = set(split.eval_keys) if split.eval_keys is not None else None

    def is_eval(kind, r) -> bool:
        if held_keys is not None:
            return row_key(kind, r) in held_keys
        return _conv(r) in held

    counts: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        train = [row_data(r) for r in rows.of(kind) if not is_eval(kind, r)]
        evaluation = [row_data(r) for r in rows.of(kind) if is_eval(kind, r)]
        for part, items in (("train", train), ("eval", evaluation)):
            write_private(data_dir / f"{kind}.{part}.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n"
                                                                   for x in items))
        counts[kind] = {"train": len(train), "eval": len(evaluation)}
    runs.write_json(data_dir / "split.json", {"eval_conversations": split.eval_conversations,
                                              "eval_on_train": split.eval_on_train, "note": split.note})
    return counts


def read_rows(data_dir: Path, kind: str, part: str) -> list[dict]:
    """Frozen rows of one kind; ``part`` is ``train``, ``eval`` (falls back to ``train`` when the run had
    nothing to hold out, as recorded in split.json) or ``all`` (train then eval: the refit)."""
    if part == "all":
        rows = read_rows(data_dir, kind, "train")
        split = runs.read_json(Path(data_dir) / "split.json")
        return rows if split.get("eval_on_train") else rows + read_rows(data_dir, kind, "eval")
    if part == "eval":
        split = runs.read_json(Path(data_dir) / "split.json")
        if split.get("eval_on_train"):
            part = "train"
    return runs.read_jsonl(Path(data_dir) / f"{kind}.{part}.jsonl")


def write_rehearsal(data_dir: Path, rows: list[dict], held_out: list[dict] | None = None) -> None:
    """``rehearsal.jsonl``: the SFT stages' rehearsal rows (engine.train.rehearsal); never feedback.
    ``rehearsal_heldout.jsonl``: the same kind of rows, never trained: the gate's ``kept_logprob``."""
    for name, items in (("rehearsal.jsonl", rows), ("rehearsal_heldout.jsonl", held_out or [])):
        write_private(data_dir / name, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items))


def read_rehearsal(data_dir: Path, held_out: bool = False) -> list[dict]:
    return runs.read_jsonl(Path(data_dir) / ("rehearsal_heldout.jsonl" if held_out else "rehearsal.jsonl"))


def write_regression(data_dir: Path, rows: list[dict]) -> None:
    """``regression.jsonl``: the gate's regression questions with the adapter in use's answers
    (engine.train.regression); never trained."""
    write_private(data_dir / "regression.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))


def read_regression(data_dir: Path) -> list[dict]:
    path = Path(data_dir) / "regression.jsonl"
    return runs.read_jsonl(path) if path.is_file() else []  # runs from before the check have none


def fingerprint(data_dir: Path) -> str:
    return runs.fingerprint_dir(data_dir, "*.jsonl")


def adapter_rows(home, profile: str, run_id: str | None) -> set[str]:
    """Keys of every row the adapter of ``run_id`` learned: its own rows (train, and eval too once it was
    refit on everything) and, through ``parent_adapter``, those of the adapters it continued."""
    seen: set[str] = set()
    visited: set[str] = set()
    while run_id and run_id not in visited:
        visited.add(run_id)
        rd = runs.RunDir(home, profile, run_id)
        try:
            manifest = rd.read_manifest()
        except LinkRefused:
            raise  # a link in a parent run is refused, not read as "nothing learned"
        except (OSError, ValueError, UserError):
            break
        report = runs.read_json(rd.report_json) if rd.finished else {}
        part = "all" if report.get("adapter_rows") == "all" or manifest.get("eval_on_train") else "train"
        from engine.train.methods import rows_of

        for kind in rows_of(manifest.get("plan", [])):
            try:
                for r in read_rows(rd.data, kind, part):
                    seen.add(row_key(kind, r))
            except LinkRefused:
                raise
            except (OSError, ValueError, UserError):
                continue
        run_id = manifest.get("parent_adapter")
    return seen
