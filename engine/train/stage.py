"""One stage of a run: one method's trainer on its rows (feedback, question variants, rehearsal), with the
callbacks every stage installs (checkpoints and metrics, progress, the early stop), saved as the stage's
adapter with its COMPLETE marker. Training libraries are imported inside ``train_stage``."""

from __future__ import annotations

import gc
import sys
import time

from engine import runs
from engine.errors import UserError
from engine.train import data, plan
from engine.train.run_state import Run, Stage, say, stage_dir


def reward_inputs(run: Run, args: dict, use_cpu: bool) -> dict:
    """What an RL recipe (engine.train.rl) needs beside the common arguments: the reward function of the reward
    run the manifest names, the frozen [rl] settings; its rate and steps unless flags were given."""
    from engine.train import rl

    manifest, overrides = run.manifest, run.manifest.get("overrides", {})
    reward_model, hooks = manifest.get("reward_model"), run.opts.reward
    if not reward_model or hooks is None or hooks.load_run is None:
        raise UserError(f"run {run.rd.run_id} trains against a reward model and none was offered to it; run it with "
                        "`engine finetune`.")
    scorer = hooks.load_run(run.home, run.profile.name, reward_model["run_id"])
    settings = plan.effective_rl(manifest["rl"], overrides)
    args["learning_rate"] = settings.learning_rate
    args["max_steps"] = settings.steps
    return {"reward": rl.reward_function(scorer), "rl": settings, "use_cpu": use_cpu}


def stage_overrides(settings, method) -> dict:
    """Trainer arguments that depend on the stage's method (its row's ``overrides``: the preference rate for
    DPO/KTO, NEFTune for SFT)."""
    return method.overrides(settings)


def early_stop(run: Run, stage: Stage, tokenizer, model, rl_settings=None):
    """The early stop of a stage, or None: SFT on its feedback rows (train.stop_when_learned), DPO and KTO
    (train.preference_stop_loss; ``model`` is the adapter the stage starts from, scored here as the reference), RL
    before its policy drifts (rl.stop_kl)."""
    if stage.method.reward:
        if rl_settings is None or rl_settings.stop_kl is None:
            return None
        from engine.train.kl_stop import StopBeforeDrift

        return StopBeforeDrift(rl_settings.stop_kl,
                               say=lambda text: say(run.opts, f"[{stage.phase}{stage.method.name}] {text}"))
    if stage.method.preference:
        return preference_stop(run, stage, tokenizer, model)
    share = plan.learned_share(run.settings, run.manifest["plan"], stage.phase)
    if share is None or not stage.method.rehearsal:  # the stages that train feedback replies as SFT rows
        return None
    from engine.train.chat_tokens import tokenize_sft_row
    from engine.train.early_stop import StopWhenLearned

    feedback = data.read_rows(run.rd.data, stage.method.rows, stage.part)
    model_id = getattr(tokenizer, "name_or_path", None) or "the model"
    rows = [tokenize_sft_row(tokenizer, r["messages"], model_id) for r in feedback if r.get("messages")]
    return StopWhenLearned(rows, share, say=lambda text: say(run.opts, f"[{stage.phase}{stage.method.name}] {text}"))


def preference_stop(run: Run, stage: Stage, tokenizer, model):
    """A DPO or KTO stage's StopWhenPreferred, its reference scored now (before training: the starting adapter)."""
    import random

    from engine.train import gate
    from engine.train.early_stop import PREFERENCE_SAMPLE, StopWhenPreferred
    from engine.train.methods import RowKind

    settings = run.settings
    if settings.preference_stop_loss is None or stage.method.rows not in (RowKind.PREF, RowKind.KTO):
        return None
    rows = data.read_rows(run.rd.data, stage.method.rows, stage.part)
    if len(rows) > PREFERENCE_SAMPLE:
        rows = random.Random(settings.seed).sample(rows, PREFERENCE_SAMPLE)
    if not rows:
        return None
    pref = stage.method.rows == RowKind.PREF
    scored = gate.EvalRows(pref=rows) if pref else gate.EvalRows(kto=rows)
    was_training = model.training
    model.eval()
    try:
        reference = gate.score(model, tokenizer, scored, settings.max_length)
    finally:
        model.train(was_training)
    return StopWhenPreferred(scored, reference, "dpo_loss" if pref else "kto_loss", settings.preference_stop_loss,
                             settings.beta, settings.max_length, tokenizer,
                             say=lambda text: say(run.opts, f"[{stage.phase}{stage.method.name}] {text}"))


def train_stage(run: Run, stage: Stage) -> tuple[int, str | None]:
    """Train one method; returns (global steps, None | "signal" | "budget")."""
    import torch

    from engine.train import model as model_mod
    from engine.train import trainer_args
    from engine.train.callbacks import RunCallback
    from engine.train.progress_callback import ProgressCallback

    home, profile, rd, manifest, settings, opts = run.home, run.profile, run.rd, run.manifest, run.settings, run.opts
    index, parent, phase, method = stage.index, stage.parent, stage.phase, stage.method.name
    rows = data.read_rows(rd.data, stage.method.rows, stage.part)
    row_counts = {"feedback": len(rows)}
    if stage.method.rehearsal and rows:
        from engine.train.variants import add_variants

        run_rows = data.read_rows(rd.data, stage.method.rows, "all")  # the run's rows decide whether variants are made
        rows = add_variants(rows, settings.question_variants, run_rows)  # a fact also after "Tell me about <name>."
        row_counts["question_variants"] = len(rows) - row_counts["feedback"]
        rehearsal_rows = data.read_rehearsal(rd.data)  # the model's own replies beside the feedback
        row_counts["rehearsal"] = len(rehearsal_rows)
        rows = rows + rehearsal_rows
        say(opts, f"[{phase}{method}] training on {row_counts['feedback']} feedback + "
                   f"{row_counts['question_variants']} question variants + {row_counts['rehearsal']} rehearsal rows")
    if not rows:
        raise UserError(f"run {rd.run_id} has no training rows for {method} in {rd.data}; start a new run.")
    device = model_mod.train_device(profile)
    use_cpu = device == "cpu"
    dtype = model_mod.train_dtype(profile, device)
    path = manifest["base_model"]["path"]
    if profile.is_demo:
        path = model_mod.resolve_model_path(profile, home)
    tokenizer = model_mod.load_tokenizer(profile, path)
    base = model_mod.load_base(profile, path, dtype)
    from transformers import set_seed

    set_seed(settings.seed)  # a fresh LoRA's random init is part of what makes a run reproducible
    peft_model = model_mod.attach_adapter(base, profile, parent)
    out_dir = rd.checkpoints / f"{phase}{index + 1}-{method}"
    tb_dir = rd.root / "tensorboard" if opts.tensorboard else None
    trainer_args.tensorboard_env(tb_dir)
    args = trainer_args.common_args(settings, out_dir, use_cpu, dtype, tb_dir)
    args.update(stage_overrides(settings, stage.method))
    rl_inputs = reward_inputs(run, args, use_cpu) if stage.method.reward else {}
    run_cb = RunCallback(rd.metrics, f"{phase}{method}", run.stop, run.deadline, settings.save_minutes)
    progress = ProgressCallback(f"{phase}{method}", run.deadline, stream=sys.stderr)
    callbacks = [run_cb, progress]
    learned = early_stop(run, stage, tokenizer, peft_model, rl_inputs.get("rl"))
    if learned is not None:
        callbacks.append(learned)
    trainer = stage.method.recipe().build(peft_model, tokenizer, rows, settings, args, callbacks, **rl_inputs)
    batching = getattr(trainer, "tuneloop_batching", "padded batches (TRL supports padding-free only for SFT)")
    if getattr(trainer, "tuneloop_distilled", 0):
        row_counts["distilled_rehearsal"] = trainer.tuneloop_distilled  # toward the starting model's distribution
    if stage.method.anchored and settings.anchor_weight > 0:
        from engine.train import distill

        anchored = distill.anchor(trainer, tokenizer, data.read_rehearsal(rd.data), settings.anchor_weight,
                                  settings.batch_size, settings.seed)
        row_counts["anchor"] = anchored
        say(opts, f"[{phase}{method}] " + (f"anchored to the starting model on {anchored} rehearsal rows "
                                           f"(train.anchor_weight = {settings.anchor_weight:g})" if anchored else
                                           "no rehearsal rows to anchor to (train.anchor_weight needs rehearsal > 0)"))
    trainer_args.strip_default_printer(trainer)
    rd.check(out_dir)  # the Trainer writes here: no link on the way out of the home
    ckpt = runs.newest_complete_checkpoint(out_dir)
    if ckpt is not None:
        say(opts, f"[{method}] resuming from {ckpt.name}")
    # Python's cyclic GC walks every object the process holds (~450k here: torch, transformers, the log)
    # each time its oldest generation fills; the training loop's allocations trigger that several times
    # per run. Freezing what exists now makes those passes look at new objects only.
    gc.collect()
    gc.freeze()
    try:
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    except torch.OutOfMemoryError:
        raise UserError(f"out of GPU memory while training {method}; lower batch_size or max_length, or set "
                        f"gradient_checkpointing = true in the [train] table of profile {profile.name!r}.") from None
    except Exception as exc:
        # ENOSPC, and what torch.save (RuntimeError) and safetensors (SafetensorError) make of it
        disk = runs.as_disk_error(exc, rd.root)
        if disk is not None:
            raise disk from None
        raise
    finally:
        gc.unfreeze()
    global_step = trainer.state.global_step
    stopped_by = run_cb.stopped_by
    learned_record = learned.record() if learned else {}
    if stopped_by != "signal":
        sdir = stage_dir(rd, index, method, phase)
        trained = trainer.model

        def save():
            try:
                with runs.publish_dir(sdir / "adapter") as tmp:
                    model_mod.save_adapter(trained, profile, tmp)
                rd.write_json(sdir / runs.COMPLETE_MARKER, {"steps": global_step, "stopped_by": stopped_by,
                                                            "ts": time.time(), "batching": batching,
                                                            "rows": row_counts, **learned_record})
            except Exception as exc:
                disk = runs.as_disk_error(exc, rd.root)
                if disk is not None:
                    raise disk from None
                raise

        runs.on_main(save)
        runs.barrier()
    del trainer, peft_model, base
    gc.collect()
    return global_step, stopped_by
