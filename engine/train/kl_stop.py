"""Stop an RL stage before its policy drifts from the reference: ``rl.stop_kl``.

Why: on SmolLM2 an RL run can go from learning the person's preference to reward hacking within a few steps.
The committed recipe's run of 2026-12-07 sat at KL ~0 for 16 of its 24 steps, then rose to 1.6 nats/token in the
last 8 and ended answering one word ("Awful.") to everything; the gate refused it, and the night's work was lost.
A run that learned the preference (93% win rate) stayed at 0.125 (bench/LEARNING_NOTES.md). So after each step
this callback reads the KL the trainer logged for the replies it sampled at that step (TRL's RLOO: the mean per
token of log p_policy - log p_ref over the sampled replies, an estimate of KL(policy || reference); GRPO: its
per-token k3 estimate), and once it passes the limit it puts back the weights of the last step whose replies were
under it and stops the stage. The gate then judges that step's adapter, not the drifted one.

The weights are the stage's trainable ones (the LoRA), copied at the start of each step: a few MB for a small
model, cheap next to sampling the step's replies. This module imports transformers at the top; import it only
inside functions.
"""

from __future__ import annotations

from transformers import TrainerCallback

from engine import runs


def trainable_weights(model) -> dict:
    """A copy of the weights the stage trains (the LoRA), by name."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def put_back(model, weights: dict) -> None:
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)


class StopBeforeDrift(TrainerCallback):
    """After each step: record the KL the trainer logged for that step's replies; past ``limit``, restore the
    weights of the last step under it and stop."""

    def __init__(self, limit: float, say=None) -> None:
        self.limit = limit
        self.say = say
        self.history: list[dict] = []
        """One ``{"step", "kl"}`` per logged step (the stage's COMPLETE marker keeps it)."""
        self.stopped_at: int | None = None
        """The step whose KL passed the limit, when it did."""
        self.kept_step: int | None = None
        """The step whose weights were put back (its replies were the last under the limit)."""
        self._starting: tuple[int, dict] | None = None  # (step, weights) at the start of the step being trained
        self._under: tuple[int, dict, float] | None = None  # the last step whose replies were under the limit

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self._starting = (state.global_step + 1, trainable_weights(model))
        return control

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        kl = (logs or {}).get("kl")
        if kl is None or self._starting is None or model is None:
            return control
        step, weights = self._starting
        self._starting = None  # a second log line in the same step (e.g. the end of training) is not a new step
        self.history.append({"step": step, "kl": round(float(kl), 4)})
        if not runs.any_rank(not kl <= self.limit):  # NaN counts as past the limit
            self._under = (step, weights, float(kl))
            return control
        self.stopped_at = step
        control.should_training_stop = True
        if self._under is None:
            if self.say:
                self.say(f"KL to the reference {kl:.3f} nats/token at step {step}, past rl.stop_kl = "
                         f"{self.limit:g}, and no earlier step was under it; stopping here")
            return control
        kept, kept_weights, kept_kl = self._under
        put_back(model, kept_weights)
        self.kept_step = kept
        if self.say:
            self.say(f"KL to the reference {kl:.3f} nats/token at step {step}, past rl.stop_kl = {self.limit:g}: "
                     f"stopping, with the weights the policy had at step {kept} (its replies' KL {kept_kl:.3f})")
        return control

    def record(self) -> dict:
        """What the stage's COMPLETE marker keeps."""
        return {"kl": self.history, "kl_stopped_at": self.stopped_at, "kl_kept_step": self.kept_step}
