"""``engine finetune``, top to bottom: prepare (or resume) a run, train its stages, publish the adapter,
then evaluate, gate and report.

    prepare  -> lock the profile, freeze rows into run_dir/data, choose methods, write manifest.json
    train    -> one stage per method (``sft`` then ``dpo`` for ``auto`` with pairs); each stage resumes
                from its newest COMPLETE checkpoint and ends with its own adapter in stages/<n>-<method>/
    publish  -> the last stage's adapter becomes run_dir/adapter (temp dir + rename)
    finish   -> gate.evaluate new vs current on the held-out slice, promote if not worse, report.json

Under ``accelerate launch``/``torchrun`` every rank trains (data-parallel); only rank 0 writes the run
directory, evaluates and promotes, the others wait at barriers.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from engine import adapters, runs
from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile, TrainSettings, load_profile
from engine.settings import as_dict
from engine.train import data, methods, plan


@dataclass
class FinetuneOptions:
    method: str | None = None
    """None: the profile's train.method."""
    start_from: str = "promoted"
    """``promoted`` (continue the adapter in use) or ``base`` (fresh LoRA)."""
    overrides: dict = field(default_factory=dict)
    """Flag values for plan.effective_settings (epochs, max_steps, learning_rate, batch_size, seed ...)."""
    time_budget: str | None = None
    until: str | None = None
    resume: bool = False
    tensorboard: bool = False
    machine_revisions: bool = True
    """Revise critiques nobody revised in the chat before training (engine.train.revise)."""
    reward: RewardHooks | None = None
    """What training uses of engine.reward, passed in by the command (engine/cli/train_cmd.py) so that
    engine.train never imports engine.reward (which builds on engine.train). None: no reward model is
    used (the gate's reward check is skipped and says so; machine revisions use the model's self-check)."""
    stream: TextIO | None = None
    """Where progress and the report go (default: stderr for progress, stdout for the report)."""


@dataclass(frozen=True)
class RewardHooks:
    load_scorer: Callable[[Home, str], Any]
    """engine.reward.best_of.load_scorer: the profile's newest reward model, or None."""
    win_rate: Callable[..., Any]
    """engine.reward.evaluate.reward_win_rate: how often the scorer prefers one adapter's replies."""
    newest: Callable[[Home, str], Any] | None = None
    """engine.reward.run.newest_for_rl: the newest finished reward run as plan.RewardModel, or None."""
    load_run: Callable[[Home, str, str], Any] | None = None
    """engine.reward.score.RewardScorer.load: one reward run's scorer by id (RL trains against the run the
    manifest names, so a resume uses the same one)."""


@dataclass
class FinetuneResult:
    run_id: str
    exit_code: int
    message: str
    report: dict | None = None


def _quiet_libraries() -> None:
    """Our progress display replaces the libraries' own bars (dataset mapping, weight loading)."""
    import warnings

    import datasets
    import transformers

    # deprecation notices from the libraries and peft's "no config in builtin:demo" (our base id is a
    # profile id, not a hub path) say nothing a user can act on
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Could not find a config file in")

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def run(home: Home, profile_name: str, opts: FinetuneOptions) -> FinetuneResult:
    runs.init_distributed()
    _quiet_libraries()
    profile = load_profile(profile_name, home)
    plan.effective_settings(profile, opts.overrides)  # a bad flag fails here, before the lock or a run dir
    deadline = runs.Deadline.from_options(opts.time_budget, opts.until)
    if opts.tensorboard:
        _check_tensorboard()
    lock = runs.RunLock(home, profile.name)
    try:
        run_id = runs.on_main(_prepare_resume if opts.resume else _prepare_new, home, profile, opts, lock)
        runs.barrier()
        rd = runs.RunDir(home, profile.name, run_id)
        manifest = rd.read_manifest()
        with runs.StopRequest() as stop:
            try:
                settings = TrainSettings(**manifest["settings"])
            except (TypeError, ValueError) as exc:
                raise UserError(f"{rd.manifest} is damaged: its settings are not valid ({str(exc).splitlines()[0]}); "
                                "start a new run without --resume.") from None
            return _train_and_finish(Run(home, profile, rd, manifest, settings, opts, deadline, stop))
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------- prepare


def _check_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'tuneloop[plots]'.") from None


def _parent_adapter(home: Home, profile: Profile, start_from: str) -> tuple[str | None, Path | None]:
    if start_from == "base":
        return None, None
    if start_from != "promoted":
        raise UserError(f"--from {start_from!r} must be 'promoted' or 'base'.")
    run_id, path = adapters.resolve_adapter(home, profile.name, "promoted", fix=f"run `engine adapters --profile "
                                            f"{profile.name} use base` or train with --from base")
    if path is not None:  # before a run dir exists; adapters tuneloop trains name the profile's model id
        adapters.check_adapter_base(path, [profile.model.id], fix="train with --from base or switch adapters")
    return run_id, path


def _prepare_new(home: Home, profile: Profile, opts: FinetuneOptions, lock: runs.RunLock) -> str:
    settings = plan.effective_settings(profile, opts.overrides)
    method = opts.method or settings.method
    parent_id, parent_path = _parent_adapter(home, profile, opts.start_from)
    snap = data.collect(home, profile.name)
    machine = _machine_revisions(home, profile, snap, parent_id, settings.seed, opts)
    in_context = data.in_context(snap.rows, profile.system_prompt)
    counts = snap.rows.counts()
    reward_model = opts.reward.newest(home, profile.name) if opts.reward and opts.reward.newest else None
    stages, why = plan.choose(method, counts, settings.min_rows, profile.rl, reward_model)
    if methods.uses_reward(stages) and reward_model is None:
        raise UserError(f"{'+'.join(stages)} trains against the profile's reward model and profile {profile.name!r} "
                        f"has none: train one first with `engine reward --profile {profile.name}`.")
    current = adapters.promoted_run(home, profile.name)
    kinds = tuple(methods.rows_of(stages))
    seen = data.adapter_rows(home, profile.name, current)
    if opts.start_from == "base" and current is not None and data.nothing_new(snap.rows, seen, kinds):
        # starting over on feedback the adapter in use has all learned: no row is unseen by it, so the
        # fresh adapter is judged against the base model (which has seen nothing) instead
        current, seen = None, set()
    split = data.split_new_feedback(snap.rows, seen, settings.eval_fraction, settings.seed, current,
                                    tuple(methods.gate_rows_of(stages)), refit=not methods.reward_only(stages))
    lock.acquire()
    from engine.train.model import load_tokenizer, resolve_model_path

    model_path = resolve_model_path(profile, home)
    tokenizer = load_tokenizer(profile, model_path)  # a missing model fails here, before a run dir exists
    from engine.train.model import quantization

    quantization(profile, None)  # so does train.quantize on a machine that cannot quantize
    if any(methods.METHODS[m].masks_replies for m in stages):
        from engine.train.chat_tokens import check_template

        check_template(tokenizer, profile.model.id)  # a template we cannot mask fails here too
    if parent_id is None:  # a fresh LoRA: its target modules must exist in the model
        from engine.train.model import check_target_modules_early, lora_where

        check_target_modules_early(profile.lora.target_modules, model_path, lora_where(profile),
                                   profile.model.revision, profile.model.trust_remote_code)
    rehearsal_rows: list[dict] = []
    held_out_rows: list[dict] = []
    rehearsal_info: dict = {"rows": 0}
    if any(methods.METHODS[m].rehearsal for m in stages):
        from engine.train import rehearsal

        rehearsal_rows, held_out_rows, rehearsal_info = rehearsal.build(
            home, profile, snap.rows, parent_id, settings.rehearsal, settings.seed, settings.question_variants,
            say=lambda text: _say(opts, text), distill=settings.rehearsal_distill)
    from engine.train import regression
    from engine.train import rehearsal as rehearsal_mod

    regression_rows, regression_info = regression.build(
        home, profile, rehearsal_mod.asked(snap.rows, data.KINDS), current, settings.gate_regression_prompts,
        say=lambda text: _say(opts, text))
    revision = profile.model.revision
    if revision is None and Path(model_path).is_dir():
        from engine.runtime.loading import local_revision

        revision = local_revision(Path(model_path))
    rd = runs.RunDir.create(home, profile.name, "-".join(stages))
    lock.update(rd.run_id)
    split_counts = data.write_split(rd.data, snap.rows, split)
    data.write_rehearsal(rd.data, rehearsal_rows, held_out_rows)
    data.write_regression(rd.data, regression_rows)
    machine_info = _write_machine_revisions(rd.data, machine, opts)
    data_dir_files = {p.name: runs.sha256_file(p) for p in sorted(rd.data.glob("*.jsonl"))}
    manifest = {
        "command": "finetune",
        "run_id": rd.run_id,
        "created": time.time(),
        "profile": profile.name,
        "profile_path": str(profile.path) if profile.path else None,
        "base_model": {"id": profile.model.id, "revision": revision, "path": model_path},
        "from": opts.start_from,
        "parent_adapter": parent_id,
        "parent_adapter_path": str(parent_path) if parent_path else None,
        "method": method,
        "plan": stages,
        "why": why,
        "counts": counts,
        "rows": split_counts,
        "eval_conversations": split.eval_conversations,
        "eval_rows": split.eval_keys,
        "eval_on_train": split.eval_on_train,
        "gate_against": current,
        "split_note": split.note,
        "source_log": {"sha256": snap.log_sha256, "offsets": snap.log_offsets},
        "log_cutoff_ts": snap.log_cutoff_ts,
        "log_warnings": snap.warnings,
        "data": {"fingerprint": data.fingerprint(rd.data), "files": data_dir_files},
        "rehearsal": rehearsal_info,
        "regression": regression_info,
        "in_context": {"rows": in_context, "system_prompt": profile.system_prompt},
        "machine_revisions": machine_info,
        "settings": as_dict(settings),
        "rl": as_dict(profile.rl),
        "reward_model": as_dict(reward_model) if reward_model and methods.uses_reward(stages) else None,
        "overrides": {k: v for k, v in opts.overrides.items() if v is not None},
        "profile_settings": plan.profile_settings(profile),
        "lora": as_dict(profile.lora),
        "packages": runs.package_versions(),
        "world_size": runs.world_size(),
        "python": sys.version.split()[0],
    }
    rd.write_manifest(manifest)
    for warning in snap.warnings:
        _say(opts, f"warning: {warning}")
    _say(opts, f"run {rd.run_id}: {why}; {split.note}")
    return rd.run_id


def _machine_revisions(home: Home, profile: Profile, snap, parent_id: str | None, seed: int, opts: FinetuneOptions):
    """The offline revision pass (engine.train.revise): its revisions; their rows join ``snap.rows``, and rows
    of revisions a person accepted then weigh more (written twice)."""
    if not opts.machine_revisions or snap.state is None:
        return []
    from engine.train import revise

    machine = revise.run_pass(home, profile, snap.state, parent_id, seed=seed, say=lambda text: _say(opts, text),
                              load_scorer=opts.reward.load_scorer if opts.reward else None)
    sft, pref = revise.machine_rows(machine)
    if sft:
        snap.rows.sft = revise.weighted(snap.rows.sft) + sft
        snap.rows.pref = revise.weighted(snap.rows.pref) + pref
    return machine


def _write_machine_revisions(data_dir: Path, machine: list, opts: FinetuneOptions) -> dict:
    """``data/machine_revisions.jsonl`` (every critique revised offline, chosen or not) and the manifest's summary."""
    import json

    from engine.home import write_private

    if not opts.machine_revisions:
        return {"enabled": False}
    write_private(data_dir / "machine_revisions.jsonl",
                  "".join(json.dumps(r.export_row(), ensure_ascii=False) + "\n" for r in machine))
    chosen = [r for r in machine if r.revision is not None]
    return {"enabled": True, "critiques": len(machine), "revised": len(chosen),
            "not_addressed": len(machine) - len(chosen), "chosen_by": sorted({r.chosen_by for r in machine}),
            "file": "data/machine_revisions.jsonl"}


def _prepare_resume(home: Home, profile: Profile, opts: FinetuneOptions, lock: runs.RunLock) -> str:
    lock.acquire()
    candidates = [r for r in runs.list_runs(home, profile.name) if r.read_manifest().get("command") == "finetune"]
    rd = candidates[-1] if candidates and not candidates[-1].finished else None
    if rd is None:
        raise UserError(f"profile {profile.name!r} has no unfinished finetune run to resume; start one without "
                        "--resume.")
    manifest = rd.read_manifest()
    if data.fingerprint(rd.data) != manifest["data"]["fingerprint"]:
        raise UserError(f"the frozen data in {rd.data} changed since run {rd.run_id} started; it cannot be resumed "
                        "(start a new run without --resume).")
    diff = plan.first_difference(manifest["profile_settings"], plan.profile_settings(profile))
    if diff:
        raise UserError(f"profile {profile.name!r} changed since run {rd.run_id} started ({diff}); restore it or "
                        "start a new run without --resume.")
    for flag, value in opts.overrides.items():
        if value is not None and manifest["settings"].get(flag) != value:
            raise UserError(f"--{flag.replace('_', '-')} {value!r} differs from run {rd.run_id}'s "
                            f"{manifest['settings'].get(flag)!r}; drop the flag to resume or start a new run.")
    if opts.method and opts.method != manifest["method"]:
        raise UserError(f"--method {opts.method} differs from run {rd.run_id}'s {manifest['method']}; drop the flag "
                        "to resume or start a new run.")
    lock.update(rd.run_id)
    rd.check()
    runs.clean_leftovers(rd.root)  # temp/old folders of a publish that a kill interrupted
    _say(opts, f"resuming run {rd.run_id} ({'+'.join(manifest['plan'])})")
    return rd.run_id


# ----------------------------------------------------------------------------------------------- train


def _say(opts: FinetuneOptions, text: str) -> None:
    if runs.is_main_process():
        print(text, file=opts.stream or sys.stdout, flush=True)


def _stage_dir(rd: runs.RunDir, index: int, method: str, phase: str = "") -> Path:
    return rd.root / "stages" / f"{phase}{index + 1}-{method}"


@dataclass(frozen=True)
class Run:
    """Everything the recipe below passes down: the run's directory, its frozen manifest and settings,
    the command's options, and how it may be stopped."""

    home: Home
    profile: Profile
    rd: runs.RunDir
    manifest: dict
    settings: TrainSettings
    opts: FinetuneOptions
    deadline: runs.Deadline | None
    stop: runs.StopRequest


@dataclass(frozen=True)
class Stage:
    """One method of the plan in one phase: ``phase`` "" (the candidate, ``part`` "train") or "refit-"
    (every row, ``part`` "all"), trained on top of ``parent`` (None: a fresh LoRA)."""

    index: int
    method: methods.Method
    parent: Path | None
    phase: str
    part: str


@dataclass
class PhaseResult:
    steps: int = 0
    stopped: str | None = None
    """None (ran to the end), ``budget`` or ``signal``."""
    adapter: Path | None = None


def _train_phase(run: Run, phase: str) -> PhaseResult:
    """Train every stage of the plan once: ``phase`` "" is the candidate (training rows only), ``refit-``
    the same recipe from the same parent on every row, held-out ones included."""
    manifest = run.manifest
    parent = Path(manifest["parent_adapter_path"]) if manifest.get("parent_adapter_path") else None
    if parent is not None:  # PEFT opens it by path: no link anywhere in the parent adapter's folder
        from engine.home import check_tree

        check_tree(parent, run.home)
    result = PhaseResult()
    warm = phase and warm_refit(run.settings, manifest["plan"])
    for index, method in enumerate(manifest["plan"]):
        if warm:  # train.refit = "warm": continue from the candidate's own stage
            parent = _stage_dir(run.rd, index, method) / "adapter"
        sdir = _stage_dir(run.rd, index, method, phase)
        if runs.is_complete(sdir):
            info = runs.read_json(sdir / runs.COMPLETE_MARKER)
            result.steps += info.get("steps", 0)
            result.stopped = info.get("stopped_by")
            parent = result.adapter = sdir / "adapter"
            if result.stopped:
                break
            continue
        stage = Stage(index, methods.METHODS[method], parent, phase, "all" if phase else "train")
        stage_steps, stopped_by = _train_stage(run, stage)
        result.steps += stage_steps
        result.stopped = stopped_by
        if stopped_by == "signal":
            return result
        parent = result.adapter = sdir / "adapter"
        if stopped_by == "budget":
            break
    return result


def warm_refit(settings: TrainSettings, stages: list[str]) -> bool:
    """Whether the refit continues from the candidate (train.refit = "warm" where it applies)."""
    return (settings.refit == "warm" and settings.stop_when_learned is not None
            and all(methods.METHODS[m].rehearsal for m in stages))


def _stopped_by_signal(run: Run, steps: int, phase: str) -> FinetuneResult:
    opts, stop, profile, rd = run.opts, run.stop, run.profile, run.rd
    what = "the refit on all feedback" if phase else "training"
    msg = (f"stopped by {stop.signal_name or 'a signal'} during {what} (step {steps}); the checkpoint is saved. "
           f"Resume with: engine finetune --profile {profile.name} --resume")
    _say(opts, msg)
    return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg)


def _train_and_finish(run: Run) -> FinetuneResult:
    """candidate -> gate on feedback neither adapter has seen -> refit on everything -> publish + report."""
    from engine.train.finish import finish, gate_candidate

    home, profile, rd, manifest, settings, opts, stop = (run.home, run.profile, run.rd, run.manifest, run.settings,
                                                         run.opts, run.stop)
    candidate = _train_phase(run, "")
    if candidate.stopped == "signal":
        return _stopped_by_signal(run, candidate.steps, "")
    budget_note = "time budget reached" if candidate.stopped == "budget" else None
    verdict = runs.on_main(gate_candidate, home, profile, rd, manifest, settings, candidate.adapter, stop, opts.reward,
                           lambda text: _say(opts, text))
    runs.barrier()
    if verdict is None:
        return _stopped_in_finish(run)
    final, steps, adapter_rows = candidate.adapter, candidate.steps, "train"
    if manifest.get("eval_on_train"):
        adapter_rows = "all"  # nothing was held out: the candidate already learned every row
    elif verdict["promote"] and methods.reward_only(manifest["plan"]):
        # RL's rows are prompts, not judgements (those are in the reward model): held-out prompts need no
        # second run, and the next run can judge on them
        pass
    elif verdict["promote"] and candidate.stopped is None:
        if warm_refit(settings, manifest["plan"]):
            _say(opts, "refit: continuing from the candidate on every row until it is learned (train.refit = warm)")
        refit = _train_phase(run, "refit-")
        if refit.stopped == "signal":
            return _stopped_by_signal(run, refit.steps, "refit-")
        if refit.stopped is None:
            from engine.train.finish import check_refit

            kept = runs.on_main(check_refit, home, profile, rd, settings, refit.adapter, stop,
                                lambda text: _say(opts, text))
            runs.barrier()
            if kept is None:
                return _stopped_in_finish(run)
            if kept["ok"]:
                final, steps, adapter_rows = refit.adapter, steps + refit.steps, "all"
            else:
                steps += refit.steps
                budget_note = (f"the refit on all feedback failed the {kept['reason'].split(';')[0]} (the gated "
                               "candidate had passed): the candidate is promoted, the held-out rows are learned by "
                               "the next run")
        else:
            budget_note = ("time budget reached during the refit on all feedback: the gated adapter (without the "
                           "held-out rows) is promoted; the next run learns them")
    report = runs.on_main(finish, home, profile, rd, manifest, settings, final, verdict, steps, budget_note,
                          adapter_rows, opts, stop)
    runs.barrier()
    if report is None:  # a signal during publish: stopped before promoting
        return _stopped_in_finish(run)
    if stop.requested:  # it came after the promotion: the run is finished, and says so, exiting as for a signal
        msg = (f"{stop.signal_name} arrived after run {rd.run_id} was published; it finished first "
               f"({'promoted' if report['promoted'] else 'not promoted'}), nothing is left to resume.")
        _say(opts, msg)
        return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg, report)
    return FinetuneResult(rd.run_id, 0, report["reason"], report)


def _stopped_in_finish(run: Run) -> FinetuneResult:
    opts, stop, profile, rd = run.opts, run.stop, run.profile, run.rd
    msg = (f"stopped by {stop.signal_name or 'a signal'} while evaluating the new adapter (nothing promoted "
           f"by this step). Resume with: engine finetune --profile {profile.name} --resume")
    _say(opts, msg)
    return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg)


def _rl_inputs(run: Run, args: dict, use_cpu: bool) -> dict:
    """What an RL recipe (engine.train.rl) needs beside the common arguments: the reward function of the reward
    run the manifest names, the frozen [rl] settings; its rate and steps unless flags were given."""
    from engine.train import rl

    manifest, overrides = run.manifest, run.manifest.get("overrides", {})
    reward_model, hooks = manifest.get("reward_model"), run.opts.reward
    if not reward_model or hooks is None or hooks.load_run is None:
        raise UserError(f"run {run.rd.run_id} trains against a reward model and none was offered to it; run it with "
                        "`engine finetune`.")
    scorer = hooks.load_run(run.home, run.profile.name, reward_model["run_id"])
    settings = manifest["rl"]
    args["learning_rate"] = overrides.get("learning_rate", settings["learning_rate"])
    args["max_steps"] = overrides.get("max_steps", settings["steps"])
    return {"reward": rl.reward_function(scorer), "rl": settings, "use_cpu": use_cpu}


def stage_overrides(settings, method) -> dict:
    """Trainer arguments that depend on the stage's method (its row's ``overrides``: the preference rate for
    DPO/KTO, NEFTune for SFT)."""
    return method.overrides(settings)


def _stop_when_learned(run: Run, stage: Stage, tokenizer):
    """The early stop of an SFT stage on its feedback rows (train.stop_when_learned), or None."""
    share = run.settings.stop_when_learned
    if share is None or not stage.method.rehearsal:  # the stages that train feedback replies as SFT rows
        return None
    from engine.train.chat_tokens import tokenize_sft_row
    from engine.train.early_stop import StopWhenLearned

    feedback = data.read_rows(run.rd.data, stage.method.rows, stage.part)
    model_id = getattr(tokenizer, "name_or_path", None) or "the model"
    rows = [tokenize_sft_row(tokenizer, r["messages"], model_id) for r in feedback if r.get("messages")]
    return StopWhenLearned(rows, share, say=lambda text: _say(run.opts, f"[{stage.phase}{stage.method.name}] {text}"))


def _train_stage(run: Run, stage: Stage) -> tuple[int, str | None]:
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
        _say(opts, f"[{phase}{method}] training on {row_counts['feedback']} feedback + "
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
    rl_inputs = _rl_inputs(run, args, use_cpu) if stage.method.reward else {}
    run_cb = RunCallback(rd.metrics, f"{phase}{method}", run.stop, run.deadline, settings.save_minutes)
    progress = ProgressCallback(f"{phase}{method}", run.deadline, stream=sys.stderr)
    callbacks = [run_cb, progress]
    learned = _stop_when_learned(run, stage, tokenizer)
    if learned is not None:
        callbacks.append(learned)
    trainer = stage.method.recipe().build(peft_model, tokenizer, rows, settings, args, callbacks, **rl_inputs)
    batching = getattr(trainer, "tuneloop_batching", "padded batches (TRL supports padding-free only for SFT)")
    if getattr(trainer, "tuneloop_distilled", 0):
        row_counts["distilled_rehearsal"] = trainer.tuneloop_distilled  # toward the starting model's distribution
    trainer_args.strip_default_printer(trainer)
    rd.check(out_dir)  # the Trainer writes here: no link on the way out of the home
    ckpt = runs.newest_complete_checkpoint(out_dir)
    if ckpt is not None:
        _say(opts, f"[{method}] resuming from {ckpt.name}")
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
    learned_record = {"learned": learned.history, "stopped_learned_at": learned.stopped_at} if learned else {}
    if stopped_by != "signal":
        sdir = _stage_dir(rd, index, method, phase)
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
