"""Stop a stage once its feedback is learned: SFT (``train.stop_when_learned``), DPO and KTO
(``train.preference_stop_loss``, ``StopWhenPreferred`` below).

Why: a fixed number of epochs keeps training after the corrections are already answered; those extra steps
are what carries the taught names into look-alike questions ("The capital of Peru is El Diablo.": the
regression check counted 11-19 such changes in the 20-correction bench, bench/LEARNING_NOTES.md), while the
taught replies' loss was ~0.06 by epoch 4 of 5. So at the end of each epoch the stage checks, teacher-forced
and without noise, whether the model's most likely next token is the reply's own token at every reply position
of each feedback row (its greedy answer to that exact conversation is the taught reply), and stops when that
share of the rows reaches the setting. Question variants and rehearsal rows are not counted: they are there to
carry or to keep, not what the user taught. A run that never gets there trains every epoch, as before.

This module imports transformers at the top; import it only inside functions.
"""

from __future__ import annotations

from transformers import TrainerCallback

from engine import runs


def reproduced(model, rows: list[dict]) -> int:
    """How many of ``rows`` (``input_ids``/``labels`` as tokenize_sft_row makes them) the model reproduces: at
    every labelled position its argmax is the label."""
    import torch

    from engine.train.chat_tokens import IGNORE

    was_training = model.training
    model.eval()
    count = 0
    try:
        with torch.no_grad():
            for row in rows:
                ids = torch.tensor([row["input_ids"]], device=model.device)
                labels = torch.tensor(row["labels"][1:], device=model.device)
                guess = model(input_ids=ids).logits[0, :-1].argmax(-1)
                mask = labels != IGNORE
                count += bool((guess[mask] == labels[mask]).all())
    finally:
        model.train(was_training)
    return count


class StopWhenLearned(TrainerCallback):
    """At each epoch's end: record how many feedback rows are reproduced; stop at ``share`` of them."""

    def __init__(self, rows: list[dict], share: float, say=None) -> None:
        self.rows = rows
        self.share = share
        self.say = say
        self.history: list[dict] = []
        """One ``{"epoch", "reproduced", "rows"}`` per epoch end (the stage's COMPLETE marker keeps it)."""
        self.stopped_at: float | None = None

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if model is None or not self.rows:
            return control
        got = reproduced(model, self.rows)
        epoch = round(state.epoch or 0, 2)
        self.history.append({"epoch": epoch, "reproduced": got, "rows": len(self.rows)})
        done = runs.any_rank(got >= self.share * len(self.rows))
        if done and state.global_step < state.max_steps:
            self.stopped_at = epoch
            control.should_training_stop = True
            if self.say:
                self.say(f"learned: {got} of {len(self.rows)} feedback replies reproduced after epoch {epoch:g}; "
                         f"stopping here (train.stop_when_learned = {self.share:g})")
        return control

    def record(self) -> dict:
        """What the stage's COMPLETE marker keeps."""
        return {"learned": self.history, "stopped_learned_at": self.stopped_at}


PREFERENCE_SAMPLE = 32
"""At most this many of a preference stage's train rows are scored at each check (a check then costs about two
training steps of four pairs)."""


class StopWhenPreferred(TrainerCallback):
    """Stop a DPO or KTO stage once its own train rows are learned: every quarter of an epoch, score them (up to
    ``PREFERENCE_SAMPLE``) against ``reference`` (the same rows scored by the starting adapter before training:
    the reference TRL trains against) and stop when their mean preference loss (engine.train.gate: ``dpo_loss``,
    ``kto_loss``) is at most ``max_loss``.

    Why: on SmolLM2's 40 style pairs DPO ranked every train pair right by step 2 of 45 (loss 0.13, 5e-4 by step 4);
    the other 41 steps only widened the margin (8 -> 38 nats x beta) and moved answers nobody taught
    (bench/LEARNING_NOTES.md). The batch losses TRL logs are measured before each step's update on a quarter of the
    rows, so the check scores the rows itself."""

    def __init__(self, rows, reference: dict, metric: str, max_loss: float, beta: float, max_length: int,
                 tokenizer, say=None) -> None:
        self.rows, self.reference, self.metric = rows, reference, metric
        self.max_loss, self.beta, self.max_length, self.tokenizer, self.say = max_loss, beta, max_length, tokenizer, say
        self.history: list[dict] = []
        """One ``{"step", "epoch", metric, "accuracy"}`` per check (the stage's COMPLETE marker keeps it)."""
        self.stopped_at: float | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        import math

        from engine.train import gate

        per_epoch = state.max_steps / max(1.0, float(getattr(state, "num_train_epochs", 0) or args.num_train_epochs or 1))
        every = max(1, math.floor(per_epoch / 4))
        if model is None or state.global_step % every or state.global_step >= state.max_steps:
            return control
        was_training = model.training
        model.eval()
        try:
            found = gate.metrics(gate.score(model, self.tokenizer, self.rows, self.max_length), self.reference,
                                 self.rows, self.beta)
        finally:
            model.train(was_training)
        loss = found[self.metric]
        accuracy = found.get("pref_accuracy", found.get("kto_accuracy"))
        epoch = round(state.epoch or 0, 2)
        self.history.append({"step": state.global_step, "epoch": epoch, self.metric: loss, "accuracy": accuracy})
        if runs.any_rank(loss <= self.max_loss):
            self.stopped_at = epoch
            control.should_training_stop = True
            if self.say:
                self.say(f"learned: train {self.metric} {loss:.3g} (ranked right {accuracy:.0%}) at step "
                         f"{state.global_step} of {state.max_steps}; stopping here "
                         f"(train.preference_stop_loss = {self.max_loss:g})")
        return control

    def record(self) -> dict:
        """What the stage's COMPLETE marker keeps."""
        return {"learned": self.history, "stopped_learned_at": self.stopped_at}
