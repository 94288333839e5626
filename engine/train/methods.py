"""The training methods, one row each, and the kinds of frozen rows they train on.

A method is a module with ``build(model, tokenizer, rows, settings, args, callbacks) -> Trainer`` (see
``engine/train/sft.py``) plus one row in :data:`METHODS`; finetune's recipe (engine/train/finetune.py)
reads everything else it needs from the row. ``--method auto`` (engine/train/plan.py) decides which
methods a run uses from the feedback it has. No torch here: the module is imported inside the worker.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from types import ModuleType


class RowKind(StrEnum):
    """The kinds of training rows a run freezes (``data/<kind>.<part>.jsonl``; engine.train.data)."""

    SFT = "sft"
    """A conversation whose last assistant turn is a reply to learn (liked, edited, chosen)."""
    PREF = "pref"
    """A prompt with a chosen and a rejected reply (an edit, a pick, a liked and a disliked sibling)."""
    KTO = "kto"
    """A prompt with one reply labelled desirable or not (a rating)."""


@dataclass(frozen=True)
class Method:
    name: str
    rows: RowKind
    module: str
    """The module that builds its TRL trainer (imported only when the method runs)."""
    rehearsal: bool
    """Train on the starting model's own replies beside the feedback (engine.train.rehearsal)."""
    preference: bool
    """Use ``train.preference_learning_rate`` when it is set (preference objectives move further per step)."""

    def recipe(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sft", RowKind.SFT, "engine.train.sft", rehearsal=True, preference=False),
    Method("dpo", RowKind.PREF, "engine.train.dpo", rehearsal=False, preference=True),
    Method("kto", RowKind.KTO, "engine.train.kto", rehearsal=False, preference=True),
)}


def rows_of(plan: list[str]) -> list[RowKind]:
    """The row kinds a plan (a list of method names) trains on, in order, each once."""
    return list(dict.fromkeys(METHODS[m].rows for m in plan if m in METHODS))
