"""The training methods, one row each, and the kinds of frozen rows they train on.

A method is a module with ``build(model, tokenizer, rows, settings, args, callbacks) -> Trainer`` (see
``engine/train/sft.py``) plus one row in :data:`METHODS`; finetune's recipe (engine/train/finetune.py)
reads everything else it needs from the row. ``--method auto`` (engine/train/plan.py) decides which
methods a run uses from the feedback it has. No torch here: the module is imported inside the worker.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from enum import StrEnum
from types import ModuleType
from typing import Callable


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


def _count(kind: "RowKind"):
    return lambda counts: counts.get(str(kind), 0)


@dataclass(frozen=True)
class Needs:
    """What a method needs from the feedback log to run when it is asked for by name: at least ``min_rows`` (the
    profile's ``train.min_rows``) rows of what ``count`` counts, and how to say so."""

    what: str
    """The rows in words: "liked or edited replies"."""
    count: Callable[[dict], int]
    get_more: str
    """How a person gets more: "like or edit {n} more"."""
    extra: Callable[[dict], str | None] = lambda counts: None
    """A further condition's refusal (KTO: both liked and disliked replies), or None."""

    def refusal(self, method: str, counts: dict, min_rows: int) -> str | None:
        have = self.count(counts)
        if have < min_rows:
            return (f"{method} needs at least {min_rows} {self.what} and the feedback log has {have}: "
                    f"{self.get_more.format(n=min_rows - have)}.")
        return self.extra(counts)

    def why(self, method: str, counts: dict) -> str:
        return f"asked for {method}: {self.count(counts)} {self.what}"


def _kto_both_ways(counts: dict) -> str | None:
    good, bad = counts.get("kto_desirable", 0), counts.get("kto_undesirable", 0)
    if good < 1 or bad < 1:
        return (f"kto needs liked and disliked replies (at least one of each) and the feedback log has {good} liked "
                f"and {bad} disliked: rate {(good < 1) + (bad < 1)} more.")
    return None


def _no_overrides(settings) -> dict:
    return {}


def _sft_overrides(settings) -> dict:
    return {"neftune_noise_alpha": settings.neftune_noise_alpha} if settings.neftune_noise_alpha > 0 else {}


def _preference_overrides(settings) -> dict:
    rate = settings.preference_learning_rate
    return {} if rate is None else {"learning_rate": rate}


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
    needs: Needs | None = None
    """What it needs to run when asked for by name (None: one row of its kind)."""
    gate_checks: tuple[str, ...] = ()
    """The gate's metrics (engine.train.gate.METRICS) that decide for a run with this method."""
    loss_metric: str | None = None
    """The gate's ``loss`` for a run that ends with this method: a metric name, ``-name`` for the negative of one."""
    masks_replies: bool = False
    """Tokenizes chat rows itself (engine.train.chat_tokens): the model's chat template must let it find the reply."""
    overrides: Callable = field(default=_no_overrides)
    """Trainer arguments of its stage from the run's TrainSettings (a rate, NEFTune ...)."""

    @property
    def anchored(self) -> bool:
        """Trains beside the distillation anchor toward the starting model on the rehearsal rows
        (``train.anchor_weight``, engine.train.distill.anchor): every method that does not train on those rows
        itself (DPO, KTO, RL)."""
        return not self.rehearsal

    def recipe(self) -> ModuleType:
        return importlib.import_module(self.module)

    def refusal(self, counts: dict, min_rows: int) -> str | None:
        """Why the log has too little for it (one sentence), or None."""
        needs = self.needs or Needs(f"{self.rows} rows", _count(self.rows), "give {n} more")
        return needs.refusal(self.name, counts, max(1, min_rows))

    def why(self, counts: dict) -> str:
        return (self.needs or Needs(f"{self.rows} rows", _count(self.rows), "")).why(self.name, counts)


_PAIRS = Needs("preference pairs (an edit, a pick among regenerations, or a liked and a disliked reply to one message)",
               _count(RowKind.PREF), "add {n} more")
_PROMPTS = Needs("prompts from your conversations", _count(RowKind.PROMPT), "chat more first")

METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sft", RowKind.SFT, "engine.train.sft", rehearsal=True, preference=False,
           needs=Needs("liked or edited replies", _count(RowKind.SFT), "like or edit {n} more"),
           gate_checks=("liked_logprob", "kept_logprob"), loss_metric="-liked_logprob", masks_replies=True,
           overrides=_sft_overrides),
    Method("dpo", RowKind.PREF, "engine.train.dpo", rehearsal=False, preference=True, needs=_PAIRS,
           gate_checks=("pref_accuracy", "dpo_loss", "kept_logprob"), loss_metric="dpo_loss",
           overrides=_preference_overrides),
    Method("kto", RowKind.KTO, "engine.train.kto", rehearsal=False, preference=True,
           needs=Needs("liked and disliked replies",
                       lambda counts: counts.get("kto_desirable", 0) + counts.get("kto_undesirable", 0),
                       "rate {n} more", _kto_both_ways),
           gate_checks=("kto_accuracy", "kept_logprob"), loss_metric="kto_loss", overrides=_preference_overrides),
    Method("rloo", RowKind.PROMPT, "engine.train.rloo", rehearsal=False, preference=False, reward=True,
           gate_rows=(RowKind.PREF,), needs=_PROMPTS, gate_checks=("pref_accuracy",)),
    Method("grpo", RowKind.PROMPT, "engine.train.grpo", rehearsal=False, preference=False, reward=True,
           gate_rows=(RowKind.PREF,), needs=_PROMPTS, gate_checks=("pref_accuracy",)),
)}
"""The registry: a new method is a module with ``build`` and one row here. The settings' ``train.method`` choices
(engine/settings.py ``Method``) list the names a profile may set."""


def get(name: str) -> Method:
    """The method named ``name``; an unknown name is one sentence (never treated as ``auto``)."""
    from engine.errors import UserError

    if name not in METHODS:
        raise UserError(f"--method {name!r} is not one of auto, {', '.join(METHODS)}.")
    return METHODS[name]


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
