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

import sys
import time
from pathlib import Path

from engine import adapters, runs
from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile, TrainSettings, load_profile
from engine.settings import as_dict
from engine.train import data, methods, plan
from engine.train.phases import train_and_finish
from engine.train.run_state import FinetuneOptions, FinetuneResult, RewardHooks, Run, say

__all__ = ["FinetuneOptions", "FinetuneResult", "RewardHooks", "run"]


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
            return train_and_finish(Run(home, profile, rd, manifest, settings, opts, deadline, stop))
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
    anchored = settings.anchor_weight > 0 and any(methods.METHODS[m].anchored for m in stages)
    if anchored or any(methods.METHODS[m].rehearsal for m in stages):
        from engine.train import rehearsal

        rehearsal_rows, held_out_rows, rehearsal_info = rehearsal.build(
            home, profile, snap.rows, parent_id, settings.rehearsal, settings.seed, settings.question_variants,
            say=lambda text: say(opts, text), distill=settings.rehearsal_distill or anchored,
            other_rows=sum(len(snap.rows.of(k)) for k in kinds) if anchored else 0)
    from engine.train import regression
    from engine.train import rehearsal as rehearsal_mod

    regression_rows, regression_info = regression.build(
        home, profile, rehearsal_mod.asked(snap.rows, data.KINDS), current, settings.gate_regression_prompts,
        say=lambda text: say(opts, text))
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
        say(opts, f"warning: {warning}")
    say(opts, f"run {rd.run_id}: {why}; {split.note}")
    return rd.run_id


def _machine_revisions(home: Home, profile: Profile, snap, parent_id: str | None, seed: int, opts: FinetuneOptions):
    """The offline revision pass (engine.train.revise): its revisions; their rows join ``snap.rows``, and rows
    of revisions a person accepted then weigh more (written twice)."""
    if not opts.machine_revisions or snap.state is None:
        return []
    from engine.train import revise

    machine = revise.run_pass(home, profile, snap.state, parent_id, seed=seed, say=lambda text: say(opts, text),
                              load_scorer=opts.reward.load_scorer if opts.reward else None)
    sft, pref = revise.machine_rows(machine)
    if sft:
        snap.rows.sft = revise.weighted(snap.rows.sft) + sft
        snap.rows.pref = revise.weighted(snap.rows.pref) + pref
    return machine


def _write_machine_revisions(data_dir: Path, machine: list, opts: FinetuneOptions) -> dict:
    """``data/machine_revisions.jsonl`` (every critique revised offline, chosen or not) and the manifest's summary."""
    import json

    from engine.safe_files import write_private

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
    say(opts, f"resuming run {rd.run_id} ({'+'.join(manifest['plan'])})")
    return rd.run_id
