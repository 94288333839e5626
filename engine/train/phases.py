"""The phases of a run, top to bottom: train the candidate on the training rows, gate it on feedback it never
saw, refit on every row (cold: the recipe again; warm: continue from the candidate until it is learned), check
the refit, publish and report (engine.train.finish)."""

from __future__ import annotations

from pathlib import Path

from engine import runs
from engine.train import methods
from engine.train.plan import warm_refit
from engine.train.run_state import FinetuneResult, PhaseResult, Run, Stage, say, stage_dir
from engine.train.stage import train_stage


def train_phase(run: Run, phase: str) -> PhaseResult:
    """Train every stage of the plan once: ``phase`` "" is the candidate (training rows only), ``refit-``
    the same recipe from the same parent on every row, held-out ones included."""
    manifest = run.manifest
    parent = Path(manifest["parent_adapter_path"]) if manifest.get("parent_adapter_path") else None
    if parent is not None:  # PEFT opens it by path: no link anywhere in the parent adapter's folder
        from engine.safe_files import check_tree

        check_tree(parent, run.home)
    result = PhaseResult()
    warm = phase and warm_refit(run.settings, manifest["plan"])
    for index, method in enumerate(manifest["plan"]):
        if warm:  # train.refit = "warm": continue from the candidate's own stage
            parent = stage_dir(run.rd, index, method) / "adapter"
        sdir = stage_dir(run.rd, index, method, phase)
        if runs.is_complete(sdir):
            info = runs.read_json(sdir / runs.COMPLETE_MARKER)
            result.steps += info.get("steps", 0)
            result.stopped = info.get("stopped_by")
            parent = result.adapter = sdir / "adapter"
            if result.stopped:
                break
            continue
        stage = Stage(index, methods.METHODS[method], parent, phase, "all" if phase else "train")
        stage_steps, stopped_by = train_stage(run, stage)
        result.steps += stage_steps
        result.stopped = stopped_by
        if stopped_by == "signal":
            return result
        parent = result.adapter = sdir / "adapter"
        if stopped_by == "budget":
            break
    return result


def stopped_by_signal(run: Run, steps: int, phase: str) -> FinetuneResult:
    opts, stop, profile, rd = run.opts, run.stop, run.profile, run.rd
    what = "the refit on all feedback" if phase else "training"
    msg = (f"stopped by {stop.signal_name or 'a signal'} during {what} (step {steps}); the checkpoint is saved. "
           f"Resume with: engine finetune --profile {profile.name} --resume")
    say(opts, msg)
    return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg)


def train_and_finish(run: Run) -> FinetuneResult:
    """candidate -> gate on feedback neither adapter has seen -> refit on everything -> publish + report."""
    from engine.train.finish import finish, gate_candidate

    home, profile, rd, manifest, settings, opts, stop = (run.home, run.profile, run.rd, run.manifest, run.settings,
                                                         run.opts, run.stop)
    candidate = train_phase(run, "")
    if candidate.stopped == "signal":
        return stopped_by_signal(run, candidate.steps, "")
    budget_note = "time budget reached" if candidate.stopped == "budget" else None
    verdict = runs.on_main(gate_candidate, home, profile, rd, manifest, settings, candidate.adapter, stop, opts.reward,
                           lambda text: say(opts, text))
    runs.barrier()
    if verdict is None:
        return stopped_in_finish(run)
    final, steps, adapter_rows = candidate.adapter, candidate.steps, "train"
    if manifest.get("eval_on_train"):
        adapter_rows = "all"  # nothing was held out: the candidate already learned every row
    elif verdict["promote"] and methods.reward_only(manifest["plan"]):
        # RL's rows are prompts, not judgements (those are in the reward model): held-out prompts need no
        # second run, and the next run can judge on them
        pass
    elif verdict["promote"] and candidate.stopped is None:
        if warm_refit(settings, manifest["plan"]):
            say(opts, "refit: continuing from the candidate on every row until it is learned (train.refit = warm)")
        refit = train_phase(run, "refit-")
        if refit.stopped == "signal":
            return stopped_by_signal(run, refit.steps, "refit-")
        if refit.stopped is None:
            from engine.train.finish import check_refit

            kept = runs.on_main(check_refit, home, profile, rd, settings, refit.adapter, stop,
                                lambda text: say(opts, text))
            runs.barrier()
            if kept is None:
                return stopped_in_finish(run)
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
        return stopped_in_finish(run)
    if stop.requested:  # it came after the promotion: the run is finished, and says so, exiting as for a signal
        msg = (f"{stop.signal_name} arrived after run {rd.run_id} was published; it finished first "
               f"({'promoted' if report['promoted'] else 'not promoted'}), nothing is left to resume.")
        say(opts, msg)
        return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg, report)
    return FinetuneResult(rd.run_id, 0, report["reason"], report)


def stopped_in_finish(run: Run) -> FinetuneResult:
    opts, stop, profile, rd = run.opts, run.stop, run.profile, run.rd
    msg = (f"stopped by {stop.signal_name or 'a signal'} while evaluating the new adapter (nothing promoted "
           f"by this step). Resume with: engine finetune --profile {profile.name} --resume")
    say(opts, msg)
    return FinetuneResult(rd.run_id, runs.EXIT_INTERRUPTED, msg)
