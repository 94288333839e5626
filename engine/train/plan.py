"""What a run will do: its settings (profile + flags) and its methods (``--method auto`` decides from the data).

Both are decided before a run directory exists, so too little data or a bad flag costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import UserError
from engine.profiles import Profile, TrainSettings
from engine.settings import RlSettings, as_dict, override
from engine.train import methods

AUTO_MIN_PAIRS = 4
"""``auto`` runs DPO only with at least this many preference pairs (fewer pairs overfit; KTO uses ratings)."""

OVERRIDABLE = ("epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "max_length", "seed",
               "save_steps", "save_minutes")
"""[train] settings that `engine finetune` flags of the same name (``--learning-rate``...) override."""


def effective_settings(profile: Profile, overrides: dict) -> TrainSettings:
    """The profile's [train] with command-line flags applied (None means "not given"); each flag is
    checked by the rule of its setting (engine.settings), before any run directory exists."""
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise TypeError(f"not a finetune override: {', '.join(sorted(unknown))}")
    return override(profile.train, overrides)


def effective_rl(rl: dict, overrides: dict) -> RlSettings:
    """A run's frozen [rl] settings (the manifest's) with the flags that set an RL stage's rate and length
    (``--learning-rate``, ``--max-steps``: its ``learning_rate`` and ``steps``) merged in, typed."""
    return override(RlSettings(**rl), {"learning_rate": overrides.get("learning_rate"),
                                       "steps": overrides.get("max_steps")})


def profile_settings(profile: Profile) -> dict:
    """What a resume compares: the profile's model, LoRA and training settings as they are now."""
    return {"model": as_dict(profile.model), "lora": as_dict(profile.lora), "train": as_dict(profile.train),
            "rl": as_dict(profile.rl)}


def first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first dotted key whose value differs, with both values, or None. A key the old side lacks is a
    setting added to tuneloop after that run started, not a change the person made: it is skipped."""
    for key in sorted(set(old) | set(new)):
        if key not in old:
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key} was {a!r}, now {b!r}"
    return None


@dataclass(frozen=True)
class RewardModel:
    """What ``auto`` knows of the profile's newest finished reward model (engine reward), to decide on RL."""

    run_id: str
    accuracy: float | None
    """Held-out pairwise accuracy (None: the run measured none)."""


def choose(method: str, counts: dict[str, int], min_rows: int, rl=None,
           reward: RewardModel | None = None) -> tuple[list[str], str]:
    """The methods to run in order, and why (written to the manifest). Too little data is a UserError.
    ``rl`` (the profile's RlSettings) and ``reward`` let ``auto`` add an RL stage (``rl.auto``)."""
    if method != "auto":  # a method asked for by name: its row says what it needs (methods.Method.needs)
        row = methods.get(method)
        refusal = row.refusal(counts, min_rows)
        if refusal:
            raise UserError(refusal)
        return [method], row.why(counts) + (", rewards from the profile's reward model" if row.reward else "")
    stages, why = _choose_auto(counts, min_rows)
    if rl is not None:
        rl_why = _rl_refusal(counts, rl, reward)
        if rl_why is None:
            assert reward is not None
            return [*stages, "rloo"], (f"{why}; then RLOO against reward model {reward.run_id} (held-out accuracy "
                                       f"{reward.accuracy:.0%}, {counts.get('prompt', 0)} prompts)")
        if rl.auto:
            why = f"{why}; no RL stage: {rl_why}"
    return stages, why


def _rl_refusal(counts: dict[str, int], rl, reward: RewardModel | None) -> str | None:
    """Why ``auto`` adds no RL stage, or None when it may."""
    if not rl.auto:
        return "rl.auto is off"
    if reward is None:
        return "no finished reward model (train one with `engine reward`)"
    if reward.accuracy is None or reward.accuracy < rl.min_reward_accuracy:
        acc = "unmeasured" if reward.accuracy is None else f"{reward.accuracy:.0%}"
        return f"reward model {reward.run_id}'s held-out accuracy is {acc}, below rl.min_reward_accuracy " \
               f"{rl.min_reward_accuracy:.0%}"
    if counts.get("prompt", 0) < rl.min_prompts:
        return f"{counts.get('prompt', 0)} prompts, fewer than rl.min_prompts {rl.min_prompts}"
    return None


def _choose_auto(counts: dict[str, int], min_rows: int) -> tuple[list[str], str]:
    """``--method auto``'s supervised stages from the feedback there is (the RL stage is added by ``choose``)."""
    need = max(1, min_rows)
    n_sft, n_pref = counts.get("sft", 0), counts.get("pref", 0)
    n_good, n_bad = counts.get("kto_desirable", 0), counts.get("kto_undesirable", 0)
    n_edits = counts.get("edits", 0)
    n_revised = counts.get("revision_pref", 0) + counts.get("machine_revision_pref", 0)
    if n_sft >= need and n_edits and n_bad <= n_edits and n_pref <= n_edits + n_revised:
        # every pair and every dislike comes from a correction: the edited text is the lesson, and SFT teaches
        # it directly (DPO on the same pairs adds little and moves the model further)
        return ["sft"], (f"auto: {n_sft} liked/edited replies, and the only pairs and dislikes are the {n_edits} "
                         "corrections' originals, so SFT on the corrections")
    if n_sft >= need and n_revised and not n_bad and n_pref <= n_revised:
        # accepted revisions: the revised text is the lesson (SFT), and how it differs from the original is the
        # lesson's direction (DPO). SFT alone carried a length critique to 27% of held-out prompts: rehearsal trains
        # the model's own long replies to their neighbours (bench/LEARNING_NOTES.md). DPO on these pairs once broke
        # answers everywhere (24 of 30 controls) by training 40 steps past learning them; train.preference_stop_loss
        # now ends the stage once they are learned.
        return ["sft", "dpo"], (f"auto: {n_sft} liked/revised replies and {n_revised} accepted revisions over their "
                                "originals, so SFT on the revisions, then DPO on the pairs")
    if n_pref >= max(need, AUTO_MIN_PAIRS):
        if n_sft >= need:
            return ["sft", "dpo"], (f"auto: {n_sft} liked/edited replies and {n_pref} preference pairs, so SFT on the "
                                    "replies, then DPO on the pairs")
        return ["dpo"], f"auto: {n_pref} preference pairs and too few liked/edited replies for SFT, so DPO"
    if n_good >= 1 and n_bad >= 1 and n_good + n_bad >= need:
        return ["kto"], (f"auto: ratings both ways ({n_good} desirable, {n_bad} undesirable) but only {n_pref} "
                         f"preference pairs (DPO wants {AUTO_MIN_PAIRS}), so KTO")
    if n_sft >= need:
        return ["sft"], f"auto: {n_sft} liked/edited replies and no dislikes or pairs to contrast, so SFT"
    if n_pref >= need:
        return ["dpo"], f"auto: {n_pref} preference pairs and nothing else, so DPO"
    raise UserError(f"too little feedback to train profile data: need at least {need} liked or edited replies "
                    f"(have {n_sft}) or {need} preference pairs (have {n_pref}); give feedback in the chat first.")


WARM_REFIT_LEARNED = 0.9
"""The share of every row (held-out ones included) a warm refit trains until it reproduces, where
``train.stop_when_learned`` does not set one (the candidate then trained every epoch)."""


def warm_refit(settings: TrainSettings, stages: list[str]) -> bool:
    """Whether the refit continues from the candidate (train.refit = "warm" where it applies: SFT stages)."""
    return settings.refit == "warm" and all(methods.METHODS[m].rehearsal for m in stages)


def learned_share(settings: TrainSettings, stages: list[str], phase: str) -> float | None:
    """The share of its feedback rows after which an SFT stage stops: ``train.stop_when_learned``, and in a warm
    refit ``WARM_REFIT_LEARNED`` where that is None."""
    if settings.stop_when_learned is None and phase and warm_refit(settings, stages):
        return WARM_REFIT_LEARNED
    return settings.stop_when_learned
