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
    PROMPT = "prompt"
    """A prompt (a user turn with its context) from the person's own conversations: RL samples replies to it."""


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
    reward: bool = False
    """RL against the profile's reward model: ``build`` gets ``reward=`` (a function scoring replies), the run
    records which reward run it used, and the gate checks the replies themselves (engine.train.rl_gate)."""
    gate_rows: tuple[RowKind, ...] = ()
    """Kinds held out for the gate beside ``rows`` though the method does not train on them (RL: human pairs,
    whose implicit-reward accuracy the gate checks because it cannot trust the training reward)."""

    def recipe(self) -> ModuleType:
        return importlib.import_module(self.module)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sft", RowKind.SFT, "engine.train.sft", rehearsal=True, preference=False),
    Method("dpo", RowKind.PREF, "engine.train.dpo", rehearsal=False, preference=True),
    Method("kto", RowKind.KTO, "engine.train.kto", rehearsal=False, preference=True),
    Method("rloo", RowKind.PROMPT, "engine.train.rloo", rehearsal=False, preference=False, reward=True,
           gate_rows=(RowKind.PREF,)),
    Method("grpo", RowKind.PROMPT, "engine.train.grpo", rehearsal=False, preference=False, reward=True,
           gate_rows=(RowKind.PREF,)),
)}


def rows_of(plan: list[str]) -> list[RowKind]:
    """The row kinds a plan (a list of method names) trains on, in order, each once."""
    return list(dict.fromkeys(METHODS[m].rows for m in plan if m in METHODS))


def gate_rows_of(plan: list[str]) -> list[RowKind]:
    """The row kinds a plan holds out for its gate: what it trains on, plus each method's ``gate_rows``."""
    kinds = [k for m in plan if m in METHODS for k in (METHODS[m].rows, *METHODS[m].gate_rows)]
    return list(dict.fromkeys(kinds))


def uses_reward(plan: list[str]) -> bool:
    """Whether a plan has an RL stage (it needs the profile's reward model)."""
    return any(METHODS[m].reward for m in plan if m in METHODS)


def reward_only(plan: list[str]) -> bool:
    """Whether every stage is RL: such a run is not refit on its held-out rows (prompts, not judgements)."""
    return bool(plan) and all(m in METHODS and METHODS[m].reward for m in plan)
