"""The gate and the end of a finetune run (rank 0 only).

``gate_candidate``: the candidate adapter (trained without the held-out rows) against the adapter in use,
on held-out rows that neither has trained on (engine.train.data.split_new_feedback); the verdict goes to
gate.json. ``finish``: publish the final adapter (the refit on every row when the candidate passed, so
no feedback given before the run is left out of the adapter in use), promote it if the verdict says so,
write report.json (last: it marks the run finished).

Evaluation loads the base fresh and each adapter from its folder, exactly as the chat will load them.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from engine import adapters, runs
from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile, TrainSettings
from engine.safe_files import write_private
from engine.train import data, gate, methods
from engine.train import report as report_mod


def _eval_rows(rd: runs.RunDir, manifest: dict) -> tuple[gate.EvalRows, list[str]]:
    """Held-out rows of every kind; a kind the run trained on with no held-out rows falls back to its train rows."""
    notes = []
    rows = gate.EvalRows()
    trained = set(methods.rows_of(manifest["plan"]))
    for kind in data.KINDS:
        items = data.read_rows(rd.data, kind, "eval")
        if not items and kind in trained:
            items = data.read_rows(rd.data, kind, "train")
            if items and not manifest.get("eval_on_train"):
                notes.append(f"no held-out {kind} rows: {kind} metrics use the training rows.")
        setattr(rows, kind, items)
    rows.kept = data.read_rehearsal(rd.data, held_out=True)
    return rows, notes


def evaluate(home: Home, profile: Profile, manifest: dict, settings: TrainSettings, new_adapter: Path,
             rows: gate.EvalRows, current: str | None, stop=None) -> tuple[dict, str | None, str]:
    """Metrics of the new adapter and of the current one (``current``: a run id, or None for the base)."""
    from engine.train import model as model_mod

    cur_path = adapters.adapter_path(home, profile.name, current) if current is not None else None
    peft_model, tokenizer, has_current = model_mod.load_pair(profile, home, new_adapter, cur_path)
    variants: dict[str, str | None] = {"new": "new", "current": "current" if has_current else None}
    label = f"adapter {current}" if has_current else "base model"
    try:
        result = gate.evaluate(peft_model, tokenizer, rows, variants, settings.beta, manifest["plan"],
                               settings.max_length, stop)
    finally:
        del peft_model
    gc.collect()
    return result, current, label


def _reward_check(home: Home, profile: Profile, rd: runs.RunDir, current: str | None, rows: gate.EvalRows,
                  candidate: Path, reward) -> dict:
    """``train.gate_uses_reward``: the newest reward model's win rate of the new adapter's replies over the
    current one's on the held-out prompts (engine.reward.evaluate); skipped when there is no reward model."""
    from engine.runtime import GenerationParams, load_model

    if reward is None:
        return {"skipped": "no reward model was offered to this run (run it with `engine finetune`)"}
    scorer = reward.load_scorer(home, profile.name)
    if scorer is None:
        return {"skipped": "no reward model for this profile (train one with `engine reward`)"}
    prompts = gate.distinct_prompts(rows.sft + rows.pref + rows.kto)[:16]
    if not prompts:
        return {"skipped": "no held-out prompts"}
    lm = load_model(profile, home, adapter=None)
    lm.load_adapter(rd.run_id, candidate)
    if current is not None:
        lm.load_adapter(current, adapters.adapter_path(home, profile.name, current))
    win = reward.win_rate(lm, scorer, prompts, rd.run_id, current, GenerationParams.from_profile(profile))
    return {"reward_run": scorer.run_id, **win.to_json()}


def _regression_check(home: Home, profile: Profile, rd: runs.RunDir, settings: TrainSettings, candidate: Path,
                      stop=None, say=None) -> dict | None:
    """engine.train.regression: the candidate answers the regression questions the adapter in use answered before
    training. None when the run has no regression rows; ``{"stopped": True}`` when ``stop`` came meanwhile."""
    from engine.train import regression

    rows = data.read_regression(rd.data)
    if not rows:
        return None
    from engine.train.model import local_model

    lm = local_model(profile, home, None)
    lm.load_adapter(rd.run_id, candidate)
    lm.use_adapter(rd.run_id)
    replies = regression.candidate_replies(lm, rows, profile.system_prompt, stop=stop, say=say)
    del lm
    gc.collect()
    if replies is None:
        return {"stopped": True}
    return regression.check(rows, [r["reply"] for r in replies], settings.gate_max_changed,
                            late=sum(1 for r in replies if r.get("late")))


def check_refit(home: Home, profile: Profile, rd: runs.RunDir, settings: TrainSettings, refit: Path, stop=None,
                say=None) -> dict | None:
    """The regression check again for the refit on every row (it trained on rows the gate held out, so it is a
    model the gate has not seen): ``{"ok": True}`` when it passes or there is nothing to check, the check when it
    fails (the candidate is then published), None when ``stop`` came meanwhile. Kept in ``refit_check.json``."""
    path = rd.root / "refit_check.json"
    if path.is_file():
        return runs.read_json(path)
    check = _regression_check(home, profile, rd, settings, refit, stop, say)
    if check is not None and check.get("stopped"):
        return None
    result = check or {"ok": True, "reason": "no regression rows"}
    rd.write_json(path, result)
    return result


def _summary(check: dict | None) -> dict | None:
    """A regression check without its replies (gate.json and refit_check.json keep them; the report counts)."""
    return {k: v for k, v in check.items() if k != "replies"} if isinstance(check, dict) else check


def _with_regression(decision: gate.Decision, check: dict | None) -> gate.Decision:
    """The regression check decides beside the metrics: its refusal comes first, its count joins a promotion."""
    if check is None:
        return decision
    if not check["ok"]:
        reason = check["reason"] if decision.promote else f"{check['reason']} Also: {decision.reason}"
        return gate.Decision(False, reason, decision.checks)
    if decision.promote:
        decision.reason = decision.reason.replace(": promoted.", f"; {check['reason']}: promoted.")
    return decision


def gate_candidate(home: Home, profile: Profile, rd: runs.RunDir, manifest: dict, settings: TrainSettings,
                   candidate: Path | None, stop=None, reward=None, say=None) -> dict | None:
    """Evaluate the candidate against the adapter the run was prepared against, on rows neither trained on;
    the verdict is kept in ``gate.json`` so a resumed run does not judge again (nor judge the adapter in
    use against itself). None when SIGINT/SIGTERM (``stop``) arrived meanwhile: ``--resume`` judges again."""
    path = rd.root / "gate.json"
    if path.is_file():
        return runs.read_json(path)
    if candidate is None:
        raise RuntimeError("no stage produced an adapter")
    rows, notes = _eval_rows(rd, manifest)
    current = manifest["gate_against"] if "gate_against" in manifest else adapters.promoted_run(home, profile.name)
    try:
        results, current, label = evaluate(home, profile, manifest, settings, candidate, rows, current, stop)
    except gate.Stopped:
        return None
    decision = gate.decide(results["new"], results["current"], manifest["plan"], settings.gate_margin,
                             settings.gate_accuracy_margin, settings.gate_kept_margin)
    regression_check = _regression_check(home, profile, rd, settings, candidate, stop, say)
    if (stop is not None and stop.requested) or (regression_check or {}).get("stopped"):
        return None
    decision = _with_regression(decision, regression_check)
    rl_check = None
    if methods.uses_reward(manifest["plan"]) and decision.promote:
        from engine.train import rl_gate

        if reward is None or reward.load_run is None:
            raise UserError(f"run {rd.run_id} trained against a reward model and none was offered to its gate; run "
                            "it with `engine finetune`.")
        rl_check = rl_gate.run_checks(home, profile, manifest, settings, candidate, current, rows, reward.load_run)
        if stop is not None and stop.requested:
            return None
        refused = rl_gate.refusal(rl_check["checks"])
        if refused:
            decision = gate.Decision(False, refused, decision.checks)
        elif rl_check["checks"]:
            m = rl_check["measures"]
            summary = (f"on {m['prompts']} held-out prompts its replies win {m['reward_win_rate']:.0%} on the reward "
                       f"model, length x{m['length_ratio']:.2f}, KL {m['kl']:.3f}: promoted.")
            decision.reason = (decision.reason.replace(": promoted.", f"; {summary}") if decision.checks
                               else summary[0].upper() + summary[1:])
    reward_check = None
    if settings.gate_uses_reward and decision.promote and rl_check is None:
        reward_check = _reward_check(home, profile, rd, current, rows, candidate, reward)
        if reward_check.get("win_rate") is not None and reward_check["win_rate"] < 0.5:
            decision = gate.Decision(False, f"the reward model prefers the current adapter's replies (win rate "
                                            f"{reward_check['win_rate']:.0%} < 50%): not promoted.", decision.checks)
        elif reward_check.get("win_rate") is not None:
            decision.reason = decision.reason.replace(
                ": promoted.", f", and the reward model's win rate is {reward_check['win_rate']:.0%}: promoted.")
    verdict = {"promote": decision.promote, "reason": decision.reason, "checks": decision.checks,
               "eval": results, "current_run": current, "current_label": label, "reward": reward_check,
               "rl": rl_check, "regression": regression_check,
               "notes": notes, "candidate": str(candidate)}
    rd.write_json(path, verdict)
    return verdict


def _tell_server(profile: Profile, rd: runs.RunDir) -> str | None:
    """``model.server_loads_adapters``: load the promoted adapter into the profile's vLLM server now, so the
    next chat through it uses it. The promotion stands either way; what happened goes in the report."""
    if profile.model.backend != "openai" or not profile.model.server_loads_adapters:
        return None
    from engine.runtime.remote import load_adapter_on_server

    try:
        load_adapter_on_server(profile, rd.run_id, rd.adapter)
    except UserError as exc:
        return f"not loaded into the model server: {exc} (the chat app loads it when it starts)"
    return f"loaded into the model server at {profile.model.base_url} as {rd.run_id}"


def finish(home: Home, profile: Profile, rd: runs.RunDir, manifest: dict, settings: TrainSettings,
           final_adapter: Path | None, verdict: dict, steps: int, stopped: str | None, adapter_rows: str,
           opts, stop=None) -> dict | None:
    """Publish the final adapter (the refit when the candidate passed), promote it per the verdict, report.
    None when SIGINT/SIGTERM (``stop``) arrived before the promotion: ``--resume`` finishes the job.

    A resume of a run that was already promoted (killed before report.json) neither republishes the
    adapter in use nor promotes it again (so ``rollback`` still goes back to the one it replaced)."""

    out = getattr(opts, "stream", None) or sys.stdout
    if final_adapter is None:
        raise RuntimeError("no stage produced an adapter")
    already = adapters.promoted_run(home, profile.name) == rd.run_id
    if not already:
        runs.copy_adapter(final_adapter, rd.adapter)
    if stop is not None and stop.requested:
        return None
    if verdict["promote"] and not already:
        adapters.set_promoted(home, profile.name, rd.run_id, reason=verdict["reason"])
    server_note = _tell_server(profile, rd) if verdict["promote"] else None
    from engine.runtime.gguf_lora import convert_chosen

    gguf_note = convert_chosen(home, profile, rd.run_id) if verdict["promote"] else None  # llama.cpp's LoRA, once
    curve = report_mod.loss_curve(rd.metrics)
    png_note = report_mod.save_png(curve, rd.root / "loss.png") if curve else None
    if adapter_rows == "all":
        learned = ("every row (nothing could be held out)" if manifest.get("eval_on_train")
                   else "every row, held-out ones included")
    else:
        learned = "the training rows only (the held-out rows are learned by the next run)"
    used_kinds = {str(k) for k in methods.gate_rows_of(manifest["plan"])}  # a kind no stage used is not "data"
    report = {
        "run_id": rd.run_id,
        "profile": profile.name,
        "method": "+".join(manifest["plan"]),
        "why": manifest.get("why"),
        "rows": {kind: n for kind, n in manifest["rows"].items() if kind in used_kinds},
        "counts": manifest["counts"],
        "split_note": " ".join([manifest.get("split_note", "")] + verdict.get("notes", [])).strip(),
        "steps": steps,
        "stopped": stopped,
        "parent_adapter": manifest.get("parent_adapter"),
        "eval": verdict["eval"],
        "current_run": verdict["current_run"],
        "current_label": verdict["current_label"],
        "gate": {"margin": settings.gate_margin, "accuracy_margin": settings.gate_accuracy_margin,
                 "kept_margin": settings.gate_kept_margin, "checks": verdict["checks"], "reward": verdict["reward"],
                 "rl": verdict.get("rl"), "regression": _summary(verdict.get("regression")),
                 "refit_regression": _summary(runs.read_json(rd.root / "refit_check.json")
                                              if (rd.root / "refit_check.json").is_file() else None)},
        "in_context": manifest.get("in_context"),
        "reward_model": manifest.get("reward_model"),
        "promoted": verdict["promote"],
        "reason": verdict["reason"],
        "adapter_rows": adapter_rows,
        "adapter_learned": learned,
        "loss_first": curve[0][2] if curve else None,
        "loss_last": curve[-1][2] if curve else None,
        "png_note": png_note,
        "machine_revisions": manifest.get("machine_revisions"),
        "server": server_note,
        "gguf_lora": gguf_note,
        "finished": time.time(),
    }
    extra = {key.split("/")[-1]: points for key in report_mod.RL_CURVES
             if methods.uses_reward(manifest["plan"]) and (points := report_mod.loss_curve(rd.metrics, key))}
    text = report_mod.render(report, curve, extra)
    write_private(rd.root / "report.txt", text + "\n", home)
    rd.write_json(rd.report_json, report)
    print(text, file=out, flush=True)
    return report
