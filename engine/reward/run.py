"""`engine reward` as a run: lock, frozen data, manifest, signals, budget, resume, report.

Built on engine.runs (the same machinery `engine finetune` uses), so a reward run is a run
directory ``home/runs/<profile>/<YYYYMMDD-HHMMSS>-reward`` with ``kind: "reward"`` in its manifest,
``data/pref.{train,eval}.jsonl`` frozen from the log, checkpoints with COMPLETE markers, metrics.jsonl
and report.json (``eval.accuracy``, ``eval.margin``, ``eval.baseline_accuracy``; also
``eval.new``/``eval.current`` in finetune's shape so `engine adapters` can list it).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Callable

from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile, load_profile
from engine.reward import REWARD_KIND, usable
from engine.settings import as_dict


@dataclass
class RewardRunOptions:
    resume: bool = False
    time_budget: str | None = None
    until: str | None = None
    epochs: float | None = None
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    seed: int | None = None


@dataclass
class RewardRunResult:
    run_id: str
    report: dict
    interrupted: bool = False


def with_flags(profile: Profile, opts: RewardRunOptions) -> Profile:
    """``profile`` with the command's flags merged into its [reward] table, each checked by the rule of the
    setting it overrides (--max-steps by [train] max_steps'); the one place flags meet settings: training reads
    the result's ``reward`` table and nothing else."""
    from engine.settings import TrainSettings, check_value, override

    reward = override(profile.reward, {"epochs": opts.epochs, "learning_rate": opts.learning_rate,
                                       "batch_size": opts.batch_size, "seed": opts.seed})
    if opts.max_steps is not None:
        check_value(TrainSettings, "max_steps", opts.max_steps, "--max-steps")
    return replace(profile, reward=reward)


def _settings(profile: Profile, opts: RewardRunOptions) -> dict:
    """What the model depends on; a resume refuses if any of it changed."""
    return {
        "reward": as_dict(profile.reward),
        "lora": as_dict(profile.lora),
        "model": {"id": profile.model.id, "revision": profile.model.revision},
        "overrides": {k: v for k, v in asdict(opts).items()
                      if k in ("epochs", "max_steps", "learning_rate", "batch_size", "seed") and v is not None},
    }


def _new_run(home: Home, profile: Profile, opts: RewardRunOptions, log):
    """Freeze the preference pairs into a fresh run dir; too few pairs -> UserError, no run dir."""
    from engine import runs
    from engine.train import data as train_data

    snap = train_data.collect(home, profile.name)
    pref = snap.rows.pref
    if len(pref) < 2:
        raise UserError(
            f"profile {profile.name!r} has {len(pref)} preference pair(s) and a reward model needs at least 2 "
            f"({2 - len(pref)} more): pick between regenerated "
            "replies, edit replies, or `engine import` a preference file."
        )
    convs = sorted({r.conversation_id for r in pref})
    seed = opts.seed if opts.seed is not None else profile.reward.seed
    split = train_data.split_conversations(convs, profile.reward.eval_fraction, seed)
    if profile.reward.lora:  # LoRA target names the backbone lacks: refused before a run directory exists
        from engine.reward.backbone import resolve_backbone
        from engine.train.model import check_target_modules_early, lora_where

        bb = resolve_backbone(profile, home)
        check_target_modules_early(profile.lora.target_modules, str(bb.path), lora_where(profile), bb.revision,
                                   bb.trust_remote_code, "AutoModelForSequenceClassification")
    rd = runs.RunDir.create(home, profile.name, REWARD_KIND)
    counts = train_data.write_split(rd.data, train_data.Rows(pref=pref), split)
    settings = _settings(profile, opts)
    manifest = {
        "command": "reward", "run_id": rd.run_id, "kind": REWARD_KIND, "method": REWARD_KIND, "status": "running",
        "created": time.time(), "profile": profile.name, "base_model": profile.model.id,
        "revision": profile.model.revision, "backbone": profile.reward.backbone or profile.model.id,
        "why": "Bradley-Terry reward model on the preference pairs (TRL RewardTrainer)",
        "counts": {"pref": len(pref), "pref_train": counts["pref"]["train"], "pref_eval": counts["pref"]["eval"],
                   "conversations": len(convs)},
        "split": {"eval_conversations": split.eval_conversations, "eval_on_train": split.eval_on_train,
                  "note": split.note},
        "log_sha256": snap.log_sha256, "log_offsets": snap.log_offsets, "log_cutoff_ts": snap.log_cutoff_ts,
        "data_fingerprint": train_data.fingerprint(rd.data),
        "settings": settings, "settings_fingerprint": runs.settings_fingerprint(settings),
        "time_budget": opts.time_budget, "until": opts.until, "versions": runs.package_versions(),
    }
    rd.write_manifest(manifest)
    log(f"run {rd.run_id}: {len(pref)} preference pairs from {len(convs)} conversations; {split.note}")
    return rd, manifest


def _resume_run(home: Home, profile: Profile, opts: RewardRunOptions, log):
    from engine import runs
    from engine.train import data as train_data

    rd = runs.last_unfinished_run(home, profile.name, kinds=[REWARD_KIND])
    if rd is None:
        raise UserError(f"profile {profile.name!r} has no unfinished reward run to resume; "
                        f"start one with `engine reward --profile {profile.name}`.")
    manifest = rd.read_manifest()
    if train_data.fingerprint(rd.data) != manifest.get("data_fingerprint"):
        raise UserError(f"{rd.data}: the frozen data changed since the run started; start a new run instead of --resume.")
    fp = runs.settings_fingerprint(_settings(profile, opts))
    if fp != manifest.get("settings_fingerprint"):
        raise UserError(f"the [reward] settings of profile {profile.name!r} (or the flags) differ from run "
                        f"{rd.run_id}'s; resume with the same settings or start a new run.")
    log(f"resuming reward run {rd.run_id}")
    return rd, manifest


def _pairs(rd, part: str):
    from engine.reward.data import pair_from_example
    from engine.train import data as train_data

    return [pair_from_example(x, f"{rd.data}/pref.{part}.jsonl row {i + 1}")
            for i, x in enumerate(train_data.read_rows(rd.data, "pref", part))]


def _quiet_libraries() -> None:
    """Library deprecation notices and load reports say nothing a user can act on (as in finetune)."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def run_reward(home: Home, profile_name: str, opts: RewardRunOptions | None = None,
               log: Callable[[str], None] = print) -> RewardRunResult:
    """Train a reward model for ``profile_name`` in a new (or resumed) run dir and write its report."""
    from engine import runs

    opts = opts or RewardRunOptions()
    # The budget covers the whole command (loading, training, evaluation); bad values fail before any work.
    deadline = runs.Deadline.from_options(opts.time_budget, opts.until)
    runs.init_distributed()
    _quiet_libraries()
    if not runs.is_main_process():
        log = lambda _line: None  # noqa: E731  (rank 0 speaks for all)
    profile = load_profile(profile_name, home)
    flagged = with_flags(profile, opts)  # bad flags fail before any run directory exists
    lock = runs.RunLock(home, profile.name, "train")

    def prepare() -> str:  # rank 0 only; every rank gets the run id (or the UserError)
        lock.acquire(what="training")
        rd, _manifest = (_resume_run if opts.resume else _new_run)(home, profile, opts, log)
        lock.update(rd.run_id)
        return rd.run_id

    try:
        run_id = runs.on_main(prepare)
        runs.barrier()
        rd = runs.RunDir(home, profile.name, run_id)
        return _train_in(home, flagged, rd, rd.read_manifest(), opts, deadline, log)
    finally:
        lock.release()


def _train_in(home, profile, rd, manifest, opts, deadline, log) -> RewardRunResult:
    from engine import runs
    from engine.reward.train import RewardOptions, train_reward
    from engine.train.callbacks import RunCallback
    from engine.train.progress_callback import ProgressCallback

    train, held_out = _pairs(rd, "train"), ([] if manifest["split"]["eval_on_train"] else _pairs(rd, "eval"))
    checkpoint = runs.newest_complete_checkpoint(rd.checkpoints) if opts.resume else None
    # Training stops at its own deadline, which the recipe moves earlier to keep time for evaluation.
    train_deadline = runs.Deadline(deadline.at, deadline.started, deadline.label)
    with runs.StopRequest() as stop:
        callback = RunCallback(rd.metrics, REWARD_KIND, stop=stop, deadline=train_deadline,
                               save_minutes=profile.train.save_minutes)
        ropts = RewardOptions(max_steps=opts.max_steps, callbacks=[callback, ProgressCallback(REWARD_KIND, deadline)],
                              resume_from_checkpoint=str(checkpoint) if checkpoint else None,
                              deadline=deadline, train_deadline=train_deadline)
        started = deadline.started
        metrics = train_reward(profile, home, rd.root, train, held_out, ropts, log=log)
    if metrics["stopped"] == "signal":
        manifest["status"] = "interrupted"
        runs.on_main(rd.write_manifest, manifest)
        log(f"stopped by {callback.signal_name or 'a signal'} at step {metrics['steps']}; a checkpoint was saved. "
            f"Continue with `engine reward --profile {profile.name} --resume`.")
        return RewardRunResult(rd.run_id, {}, interrupted=True)
    ev = metrics["eval"]
    verdict = usable.decide(ev, _in_use(home, profile.name, rd.run_id))
    report = {
        "run_id": rd.run_id, "kind": REWARD_KIND, "method": REWARD_KIND, "profile": profile.name,
        "backbone": metrics["backbone"],
        "rows": {"pref_train": len(train), "pref_eval": len(held_out)},
        "steps": metrics["steps"], "train_loss": metrics["train_loss"], "stopped": metrics["stopped"],
        "elapsed_s": time.time() - started,
        "eval": {**ev, "new": {"accuracy": ev["accuracy"], "margin": ev["margin"]},
                 "current": {"accuracy": ev["baseline_accuracy"], "margin": ev["baseline_margin"]}},
        "calibration": metrics["calibration"],
        "non_answer_pairs": metrics.get("non_answer_pairs", 0),
        "budget": {"time_budget": opts.time_budget, "until": opts.until, **metrics["budget"]},
        "promoted": False,
        "used": verdict.used,
        "chance_p_value": verdict.p_value,
        "reason": f"reward models are not promoted; `engine score`, best-of-n and RL use the newest one that is "
                  f"better than chance; this one: {verdict.reason}",
    }
    manifest["status"] = "finished"
    if runs.is_main_process():
        rd.write_manifest(manifest)
        runs.write_json(rd.report_json, report)  # last: marks the run finished
    runs.barrier()
    for line in report_lines(report, rd):
        log(line)
    return RewardRunResult(rd.run_id, report)


def _in_use(home: Home, profile: str, but: str) -> dict | None:
    """The reward run in use before ``but`` finished (its id and accuracy), or None."""
    from engine.reward.score import newest_reward_run

    run_id = newest_reward_run(home, profile, exclude=but)
    if run_id is None:
        return None
    return next((s for s in reward_run_summaries(home, profile) if s["run_id"] == run_id), {"run_id": run_id,
                                                                                          "accuracy": None})


def reward_run_summaries(home: Home, profile: str) -> list[dict]:
    """One dict per reward run of ``profile`` (oldest first) for listings such as `engine adapters`:
    run_id, status (finished / unfinished / interrupted), backbone, steps, accuracy, margin,
    baseline_accuracy, n (held-out pairs)."""
    from engine import runs

    out = []
    for run in runs.run_summaries(home, profile, kinds=[REWARD_KIND]):
        if run.problem:
            continue
        manifest, report = run.manifest, run.report
        ev = report.get("eval", {})
        out.append({"run_id": run.run_id, "status": "finished" if report else manifest.get("status", "unfinished"),
                    "backbone": manifest.get("backbone"), "steps": report.get("steps"),
                    "accuracy": ev.get("accuracy"), "margin": ev.get("margin"),
                    "baseline_accuracy": ev.get("baseline_accuracy"), "n": ev.get("n")})
    return out


def report_lines(report: dict, rd=None) -> list[str]:
    """The human summary printed at the end of a reward run."""
    from engine.train.report import loss_curve, save_png, sparkline

    ev = report["eval"]
    where = "held-out" if ev.get("on") == "held_out" else "training (nothing held out)"
    lines = [
        f"reward run {report['run_id']} ({report['backbone']}): {report['steps']} steps, "
        f"{report['rows']['pref_train']} training pairs, stopped: {report['stopped']}",
        f"  pairwise accuracy on {ev['n']} {where} pairs: {ev['accuracy']:.1%} "
        f"(untrained head: {ev['baseline_accuracy']:.1%} on {ev.get('baseline_n', ev['n'])}); mean margin {ev['margin']:+.3f} "
        f"(untrained {ev['baseline_margin']:+.3f})",
        *([f"  chosen replies scored above a non-answer (\"Awful.\", \"Fine.\", ...; none trained on) in "
           f"{ev['over_non_answer']:.1%} of {ev['over_non_answer_n']} {where} pairs"
           + (f"; trained with {report['non_answer_pairs']} chosen-vs-non-answer pairs beside the person's"
              if report.get("non_answer_pairs") else "")]
          if ev.get("over_non_answer") is not None else []),
        f"  {report['reason'].split('; this one: ')[-1]}",
        f"  calibration: mean {report['calibration']['mean']:+.3f}, std {report['calibration']['std']:.3f} "
        f"over {report['calibration']['n']} training replies",
    ]
    cuts = report.get("budget", {}).get("cuts", [])
    if cuts:
        lines.append(f"  cut to fit: {'; '.join(cuts)}")
    if report.get("elapsed_s") is not None:
        lines.append(f"  took {report['elapsed_s']:.0f}s" + (f" (budget {report['budget']['time_budget']})"
                                                           if report.get("budget", {}).get("time_budget") else ""))
    if rd is not None:
        curve = loss_curve(rd.metrics)
        if curve:
            losses = [loss for _, _, loss in curve]
            lines.append(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}  {sparkline(losses)}")
            note = save_png(curve, rd.root / "loss.png")
            lines.append(f"  {note}" if note else f"  loss curve: {rd.root / 'loss.png'}")
        lines.append(f"  saved in {rd.root}")
    return lines


def newest_for_rl(home: Home, profile: str):
    """The newest finished reward run as ``engine.train.plan.RewardModel`` (its id and held-out accuracy), or
    None: what ``engine finetune`` uses to decide on and to run an RL stage."""
    from engine.reward.score import newest_reward_run
    from engine.train.plan import RewardModel

    run_id = newest_reward_run(home, profile)
    if run_id is None:
        return None
    accuracy = next((s["accuracy"] for s in reward_run_summaries(home, profile) if s["run_id"] == run_id), None)
    return RewardModel(run_id, float(accuracy) if accuracy is not None else None)
