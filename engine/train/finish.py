"""The end of a finetune run (rank 0 only): publish the adapter, evaluate it against the one in use on the
held-out slice, promote it if the gate says so, write report.json (last: it marks the run finished).

Evaluation loads the base fresh and the new adapter from run_dir/adapter, so what is judged is exactly
what ``engine adapters use`` and the chat will load.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

from engine import adapters
from engine.home import Home, write_private
from engine.profiles import Profile, TrainSettings
from engine.train import data, gate, plan, report as report_mod, runs


def _eval_rows(rd: runs.RunDir, manifest: dict) -> tuple[gate.EvalRows, list[str]]:
    """Held-out rows of every kind; a kind the run trained on with no held-out rows falls back to its train rows."""
    notes = []
    rows = gate.EvalRows()
    trained = {plan.ROW_KIND[m] for m in manifest["plan"]}
    for kind in data.KINDS:
        items = data.read_rows(rd.data, kind, "eval")
        if not items and kind in trained:
            items = data.read_rows(rd.data, kind, "train")
            if items and not manifest.get("eval_on_train"):
                notes.append(f"no held-out {kind} rows: {kind} metrics use the training rows.")
        setattr(rows, kind, items)
    return rows, notes


_PROMOTED = object()


def evaluate(home: Home, profile: Profile, manifest: dict, settings: TrainSettings, new_adapter: Path,
             rows: gate.EvalRows, current=_PROMOTED) -> tuple[dict, str | None, str]:
    """Metrics of the new adapter and of the current one (``current``: a run id or None for the base;
    default: the promoted adapter)."""
    from peft import PeftModel

    from engine.train import model as model_mod

    device = model_mod.train_device(profile)
    dtype = model_mod.train_dtype(profile, device)
    path = model_mod.resolve_model_path(profile, home)
    tokenizer = model_mod.load_tokenizer(profile, path)
    base = model_mod.load_base(profile, path, dtype).to(device)
    peft_model = PeftModel.from_pretrained(base, str(new_adapter), adapter_name="new")
    if current is _PROMOTED:
        current = adapters.promoted_run(home, profile.name)
    variants: dict[str, str | None] = {"new": "new", "current": None}
    label = "base model"
    if current is not None:
        cur_path = adapters.adapter_path(home, profile.name, current)
        if (cur_path / "adapter_config.json").is_file():
            peft_model.load_adapter(str(cur_path), adapter_name="current")
            variants["current"] = "current"
            label = f"adapter {current}"
    result = gate.evaluate(peft_model, tokenizer, rows, variants, settings.beta, manifest["plan"], settings.max_length)
    del peft_model, base
    gc.collect()
    return result, current, label


def _reward_check(home: Home, profile: Profile, rd: runs.RunDir, current: str | None, rows: gate.EvalRows) -> dict:
    """``train.gate_uses_reward``: the newest reward model's win rate of the new adapter's replies over the
    current one's on the held-out prompts (engine.reward.evaluate); skipped when there is no reward model."""
    import json

    from engine.reward.best_of import load_scorer
    from engine.reward.evaluate import reward_win_rate
    from engine.runtime import GenerationParams, load_model

    scorer = load_scorer(home, profile.name)
    if scorer is None:
        return {"skipped": "no reward model for this profile (train one with `engine reward`)"}
    seen, prompts = set(), []
    for prompt in [r["messages"][:-1] for r in rows.sft] + [r["prompt"] for r in rows.pref + rows.kto]:
        key = json.dumps(prompt, sort_keys=True)
        if prompt and key not in seen:
            seen.add(key)
            prompts.append(prompt)
    prompts = prompts[:16]
    if not prompts:
        return {"skipped": "no held-out prompts"}
    lm = load_model(profile, home, adapter=None)
    lm.load_adapter(rd.run_id, rd.adapter)
    if current is not None:
        lm.load_adapter(current, adapters.adapter_path(home, profile.name, current))
    win = reward_win_rate(lm, scorer, prompts, rd.run_id, current, GenerationParams.from_profile(profile))
    return {"reward_run": scorer.run_id, **win.to_json()}


def finish(home: Home, profile: Profile, rd: runs.RunDir, manifest: dict, settings: TrainSettings,
           stage_adapter: Path | None, steps: int, stopped: str | None, opts, stop=None) -> dict | None:
    """Publish, evaluate, gate, promote, report. Returns None when SIGINT/SIGTERM (``stop``) arrived during
    this phase: it stops before the next step (promotion included) and ``--resume`` redoes the phase.

    A resume of a run that was already promoted (killed before report.json) neither republishes the
    adapter in use nor gates it against itself: it is compared with the adapter it replaced, and the
    pointer's history is not touched again (so ``rollback`` still goes back to that one)."""
    from engine.train.finetune import copy_adapter

    out = getattr(opts, "stream", None) or sys.stdout
    if stage_adapter is None:
        raise RuntimeError("no stage produced an adapter")

    def stopping() -> bool:
        return stop is not None and stop.requested

    already = adapters.promoted_run(home, profile.name) == rd.run_id
    if not already:
        copy_adapter(stage_adapter, rd.adapter)
    if stopping():
        return None
    rows, notes = _eval_rows(rd, manifest)
    against = adapters.replaced_run(home, profile.name) if already else _PROMOTED
    results, current, label = evaluate(home, profile, manifest, settings, rd.adapter, rows, against)
    if stopping():
        return None
    decision = gate.decide(results["new"], results["current"], manifest["plan"], settings.gate_margin)
    reward_check = None
    if settings.gate_uses_reward and decision.promote:
        reward_check = _reward_check(home, profile, rd, current, rows)
        if reward_check.get("win_rate") is not None and reward_check["win_rate"] < 0.5:
            decision = gate.Decision(False, f"the reward model prefers the current adapter's replies (win rate "
                                            f"{reward_check['win_rate']:.0%} < 50%): not promoted.", decision.checks)
        elif reward_check.get("win_rate") is not None:
            decision.reason = decision.reason.replace(
                ": promoted.", f", and the reward model's win rate is {reward_check['win_rate']:.0%}: promoted.")
    if stopping():
        return None
    if already:  # in use since before the stop; promoting again would add it to the history twice
        if decision.promote:
            decision.reason += " (it was promoted before the run was stopped; resumed to write the report)"
        else:
            decision.reason = (f"kept in use: it was promoted before the run was stopped (evaluated again now: "
                               f"{decision.reason.rstrip('.')}); `engine adapters --profile {profile.name} "
                               "rollback` goes back.")
        decision.promote = True
    elif decision.promote:
        adapters.set_promoted(home, profile.name, rd.run_id, reason=decision.reason)
    curve = report_mod.loss_curve(rd.metrics)
    png_note = report_mod.save_png(curve, rd.root / "loss.png") if curve else None
    report = {
        "run_id": rd.run_id,
        "profile": profile.name,
        "method": "+".join(manifest["plan"]),
        "why": manifest.get("why"),
        "rows": manifest["rows"],
        "counts": manifest["counts"],
        "split_note": " ".join([manifest.get("split_note", "")] + notes).strip(),
        "steps": steps,
        "stopped": stopped,
        "parent_adapter": manifest.get("parent_adapter"),
        "eval": results,
        "current_run": current,
        "current_label": label,
        "gate": {"margin": settings.gate_margin, "checks": decision.checks, "reward": reward_check},
        "promoted": decision.promote,
        "reason": decision.reason,
        "loss_first": curve[0][2] if curve else None,
        "loss_last": curve[-1][2] if curve else None,
        "png_note": png_note,
        "finished": time.time(),
    }
    text = report_mod.render(report, curve)
    write_private(rd.root / "report.txt", text + "\n", home)
    rd.write_json(rd.report_json, report)
    print(text, file=out, flush=True)
    return report
