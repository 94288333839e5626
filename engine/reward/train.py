"""The reward recipe: setup -> baseline -> train (TRL RewardTrainer, Bradley-Terry) -> save -> evaluate.

The run directory (manifest, lock, signals, budget) is the caller's; this module only trains. The
untrained model (seeded head) is scored on up to ``BASELINE_PAIRS`` held-out pairs first, so the report
can say how much training helped (an untrained head is near chance: scoring all of them cost as much as
scoring the trained model, bench/reward_speed.py); then the trained model is scored on every held-out pair
the budget allows, and on a sample of the training replies for calibration. With a time budget, how many
pairs are scored and when training stops are sized so the whole command ends within it (engine.reward.budget). ``reward_calibration.json`` is
written last and marks the run as finished.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from engine.runs.stopping import Deadline

from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile
from engine.reward import CALIBRATION_FILE, MODEL_SUBDIR, non_answers
from engine.reward.data import Pair, encode, pretokenize
from engine.safe_files import write_private


@dataclass
class RewardOptions:
    """How this run trains beyond the profile's [reward] table (into which engine.reward.run.with_flags merged
    the command's flags)."""

    max_steps: int | None = None
    save_steps: int | None = None
    callbacks: list = field(default_factory=list)
    """Extra transformers TrainerCallbacks (progress, time budget, signals from the run machinery)."""
    resume_from_checkpoint: str | None = None
    deadline: Deadline | None = None
    """The whole command's engine.runs.Deadline (None: no budget)."""
    train_deadline: Deadline | None = None
    """The Deadline the callbacks poll to stop training; moved earlier to keep time for evaluation and
    calibration (engine.reward.budget)."""


BASELINE_PAIRS = 32
"""Held-out pairs the untrained head is scored on: enough to show it is near chance."""

AUTO_PAIRS_SEEN = 1_000
"""``reward.epochs = None``: train until about this many pairs were seen, in 1 to 3 passes. Measured
(bench/reward_speed.py, all-MiniLM-L6-v2, 937 training pairs, lr 1e-4): 1 pass 0.843 held-out accuracy in 0.85x
TRL's wall time, 3 passes 0.857 in 1.36x (TRL's full fine-tune: 0.841); small sets keep 3 passes (143 style
pairs: 100 of 100 held-out pairs ranked right with SmolLM2 as the backbone). Never under one pass: 0.6 passes
would take about 0.45x TRL's time, but the model only starts to learn after 40-60 steps (0.6 passes: 0.88 with
the head at 10x, 0.84 without; 0.53 passes without: 0.57), too close to that edge for a default."""


HEAD_LR_RATIO = 10.0
"""The fresh score head learns at this multiple of ``reward.learning_rate``: it starts near zero, and until it
has grown the backbone gets almost no gradient (the loss stays at log 2 for the first 40-60 steps).
Measured (bench/reward_speed.py, all-MiniLM-L6-v2, lr 5e-4, 0.6 passes, 2 seeds): held-out accuracy 0.879 and
0.875 with it, 0.845 and 0.843 without, in the same time."""


def auto_epochs(n_pairs: int) -> float:
    return min(3.0, max(1.0, AUTO_PAIRS_SEEN / max(1, n_pairs)))


def epochs_for(profile: Profile, n_pairs: int) -> float:
    """The passes this run makes: ``reward.epochs`` (the profile's or the flag's), else ``auto_epochs``."""
    return profile.reward.epochs if profile.reward.epochs is not None else auto_epochs(n_pairs)


def training_args(profile: Profile, run_dir: Path, opts: RewardOptions, epochs: float):
    """RewardConfig for this machine: CPU-safe (use_cpu, no bf16, no checkpointing) when no GPU."""
    import torch
    from trl import RewardConfig

    from engine.train.model import train_device

    s = profile.reward
    on_gpu = train_device(profile).startswith("cuda")
    save_steps = opts.save_steps or profile.train.save_steps
    return RewardConfig(
        output_dir=str(run_dir / "checkpoints"),
        learning_rate=s.learning_rate,
        num_train_epochs=epochs,
        max_steps=opts.max_steps if opts.max_steps is not None else -1,
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=s.batch_size,
        seed=s.seed,
        data_seed=s.seed,
        use_cpu=not on_gpu,
        bf16=bool(on_gpu and torch.cuda.is_bf16_supported()),
        fp16=False,
        gradient_checkpointing=False,
        max_length=None,  # already truncated (from the left) by data.pretokenize
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, save_steps),
        save_total_limit=2,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen=True,
        remove_unused_columns=False,
        lr_scheduler_type="constant",
        warmup_steps=0,
        # batches of pairs of similar length (the "length" column train_reward adds): less padding per step
        train_sampling_strategy="group_by_length",
    )


def head_faster(optimizer, model, ratio: float) -> None:
    """Move the score head's parameters into groups of their own at ``ratio`` times their learning rate
    (``HEAD_LR_RATIO``); call before the scheduler is made, so it keeps the ratio."""
    from engine.reward.backbone import head_names, unwrapped

    heads = set(head_names(model))
    head = {id(p) for name, p in unwrapped(model).named_parameters() if name.split(".")[0] in heads}
    for group in list(optimizer.param_groups):
        moved = [p for p in group["params"] if id(p) in head]
        if moved:
            group["params"] = [p for p in group["params"] if id(p) not in head]
            optimizer.add_param_group({**{k: v for k, v in group.items() if k != "params"},
                                       "params": moved, "lr": group["lr"] * ratio})


def reward_trainer_class():
    """TRL's RewardTrainer with the head's faster learning rate (``head_faster``)."""
    from trl import RewardTrainer

    class Trainer(RewardTrainer):
        def create_optimizer(self, model=None):
            optimizer = super().create_optimizer(model)
            head_faster(optimizer, self.model, HEAD_LR_RATIO)
            return optimizer

    return Trainer


def _save_model(model, tokenizer, target: Path) -> None:
    """Write beside the final place, then rename (engine.runs.publish_dir): never half a model."""
    from engine.runs import publish_dir

    with publish_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for p in tmp.rglob("*"):
            os.chmod(p, 0o700 if p.is_dir() else 0o600)


def train_reward(profile: Profile, home: Home, run_dir: Path, train: list[Pair], held_out: list[Pair],
                 opts: RewardOptions | None = None, log: Callable[[str], None] = print) -> dict:
    """Train, save to run_dir/reward_model, evaluate, calibrate. Returns the report's numbers.

    Returns ``{"steps", "train_loss", "stopped", "eval": {...}, "calibration": {...}}`` where eval
    has accuracy, margin, baseline_accuracy, baseline_margin, n and ``on`` ("held_out" or "train").
    """
    opts = opts or RewardOptions()
    if not train:
        raise UserError(f"profile {profile.name!r} has no preference pairs to train a reward model on; "
                        "pick between regenerated replies or import a preference file first.")
    from datasets import Dataset

    from engine.reward import budget
    from engine.reward.backbone import load_tokenizer, merged, new_reward_model, resolve_backbone, write_backbone
    from engine.reward.score import calibration_of, pair_metrics, score_ids, score_pair_list

    seed = profile.reward.seed
    max_length = profile.reward.max_length
    backbone = resolve_backbone(profile, home)
    tokenizer = load_tokenizer(backbone)
    model = new_reward_model(backbone, tokenizer, profile, seed)
    from engine import runs

    runs.on_main(write_backbone, run_dir, backbone)

    all_eval, eval_on = (held_out, "held_out") if held_out else (train, "train")
    order = random.Random(seed).sample(all_eval, len(all_eval))
    first = score_pair_list(model, tokenizer, order[:1], max_length)  # warms up: not timed
    probe_started = time.monotonic()
    probe = score_pair_list(model, tokenizer, order[1:budget.PROBE_PAIRS], max_length)
    per_sequence = (time.monotonic() - probe_started) / max(1, 2 * probe.n) if probe.n else None
    probe = pair_metrics(first.chosen + probe.chosen, first.rejected + probe.rejected)
    train_rows = pretokenize(train, tokenizer, max_length)
    replies = [r["chosen_ids"] for r in train_rows] + [r["rejected_ids"] for r in train_rows]  # the person's own
    extra = non_answers.training_pairs(train, profile.reward.non_answer_share, seed)
    deadline = opts.deadline
    plan = runs.on_main(budget.plan_scoring, deadline.remaining() if deadline else None, per_sequence,
                        len(all_eval), len(replies))
    if plan.reserve_s and opts.train_deadline is not None and deadline is not None and deadline.at is not None:
        opts.train_deadline.at = min(opts.train_deadline.at or deadline.at, deadline.at - plan.reserve_s)
    eval_pairs = order[:plan.eval_pairs]
    rest = score_pair_list(model, tokenizer, eval_pairs[probe.n:BASELINE_PAIRS], max_length)
    baseline = pair_metrics(probe.chosen + rest.chosen, probe.rejected + rest.rejected)
    log(f"untrained reward head: accuracy {baseline.accuracy:.3f} on {baseline.n} {eval_on} pairs")
    epochs = epochs_for(profile, len(train_rows))
    auto = "" if profile.reward.epochs is not None else " (reward.epochs: auto)"
    beside = f" + {len(extra)} of their chosen replies against a non-answer" if extra else ""
    log(f"training on {len(train_rows)} pairs{beside}, {epochs:.3g} passes{auto}")
    train_rows += pretokenize(extra, tokenizer, max_length)
    for cut in plan.cuts():
        log(f"budget: {cut}")

    trainer = reward_trainer_class()(
        model=model, args=training_args(profile, run_dir, opts, epochs),
        train_dataset=Dataset.from_list([dict(r, length=max(len(r["chosen_ids"]), len(r["rejected_ids"])))
                                         for r in train_rows]),
        processing_class=tokenizer, callbacks=list(opts.callbacks),
    )
    from engine.train.trainer_args import strip_default_printer

    strip_default_printer(trainer)
    result = trainer.train(resume_from_checkpoint=opts.resume_from_checkpoint)
    stopped_by = next((cb.stopped_by for cb in opts.callbacks if getattr(cb, "stopped_by", None)), None)
    if stopped_by == "signal":  # a checkpoint was saved; the caller says how to resume
        return {"steps": int(trainer.state.global_step), "stopped": "signal"}
    runs.on_main(_save_model, trainer.model, tokenizer, run_dir / MODEL_SUBDIR)
    runs.barrier()
    model = merged(trainer.model)  # saved: from here on it only scores

    trained = score_pair_list(model, tokenizer, eval_pairs, max_length)
    log(f"trained reward model: accuracy {trained.accuracy:.3f}, mean margin {trained.margin:.3f} "
        f"(untrained {baseline.accuracy:.3f})")
    held = non_answers.held_out(eval_pairs, seed)
    against = pair_metrics([trained.chosen[i] for i, _ in held],
                           score_ids(model, tokenizer, [encode(tokenizer, eval_pairs[i].prompt, reply, max_length)
                                                        for i, reply in held]))
    if against.n:
        log(f"chosen replies over a non-answer (\"Awful.\", \"Fine.\", ...): {against.accuracy:.3f} of {against.n}")
    calibration = {**calibration_of(score_ids(model, tokenizer, budget.sample(replies, plan.calibration, seed))),
                   "of": len(replies), "max_length": max_length, "seed": seed}
    metrics = {
        "steps": int(trainer.state.global_step),
        "train_loss": float(result.training_loss) if result.training_loss is not None else None,
        "stopped": stopped_by or "finished",
        "epochs": epochs,
        "eval": {
            "accuracy": trained.accuracy, "margin": trained.margin,
            "baseline_accuracy": baseline.accuracy, "baseline_margin": baseline.margin, "baseline_n": baseline.n,
            "n": trained.n, "on": eval_on,
            "over_non_answer": against.accuracy if against.n else None, "over_non_answer_n": against.n,
        },
        "non_answer_pairs": len(extra),
        "calibration": calibration,
        "backbone": backbone.source,
        "budget": plan.to_json(),
    }
    runs.on_main(write_private, run_dir / CALIBRATION_FILE, json.dumps(calibration, indent=2))
    return metrics
