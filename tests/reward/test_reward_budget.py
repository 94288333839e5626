"""``engine reward --time-budget`` bounds the whole command: loading, training, evaluation and
calibration (issue 11: a 300 s budget on 1,798 pairs ran 16+ minutes, mostly scoring after training)."""

from __future__ import annotations

import json
import time

import pytest

from engine import runs
from engine.feedback import FeedbackLog
from engine.reward.budget import CALIBRATION_SAMPLE, plan_scoring
from tests.reward.conftest import install_demo, run_engine
from tests.reward.synthetic import write_picks


def test_plan_for_the_reported_run_fits_the_budget():
    """The issue's run: 300 s, 1,798 pairs (about 360 held out, 2,876 training replies), at 0.5 s per
    scored sequence: scoring all of them would take ~30 minutes; the plan keeps it within the budget."""
    plan = plan_scoring(remaining_s=280, seconds_per_sequence=0.5, eval_total=360, calibration_total=2876)
    scored = 4 * plan.eval_pairs + plan.calibration  # baseline + trained evaluation, calibration
    assert scored * 0.5 <= 0.3 * 280 * 1.01
    assert plan.eval_pairs < 360 and plan.calibration < CALIBRATION_SAMPLE
    assert plan.reserve_s < 280 / 2
    assert any("held-out pairs" in c for c in plan.cuts()) and any("training replies" in c for c in plan.cuts())


def test_without_a_budget_everything_is_evaluated_and_calibration_is_a_sample():
    plan = plan_scoring(None, 0.5, eval_total=360, calibration_total=2876)
    assert (plan.eval_pairs, plan.calibration, plan.reserve_s) == (360, CALIBRATION_SAMPLE, 0.0)
    assert plan.cuts() == [f"calibrated on a sample of {CALIBRATION_SAMPLE} of 2876 training replies"]
    small = plan_scoring(None, 0.5, eval_total=5, calibration_total=40)
    assert small.cuts() == []


PROFILE = """
[model]
id = "builtin:demo"
device = "cpu"
dtype = "fp32"
[reward]
learning_rate = 1e-3
epochs = 200
batch_size = 2
max_length = 64
eval_fraction = 0.2
"""


@pytest.mark.slow
def test_tiny_budget_ends_near_it_and_the_report_says_what_was_cut(home, demo_model_dir, monkeypatch):
    """Scoring is made as slow as a real model's (50 ms a sequence), so scoring every held-out pair and
    every training reply after training, as before, would overrun the budget by ~15 s."""
    import engine.reward.score as score

    real = score.score_ids

    def slow_score_ids(model, tokenizer, ids, batch_size=16):
        time.sleep(0.05 * len(ids))
        return real(model, tokenizer, ids, batch_size)

    monkeypatch.setattr(score, "score_ids", slow_score_ids)
    install_demo(home, demo_model_dir)
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / "busy.toml").write_text(PROFILE)
    write_picks(FeedbackLog(home, "busy"), 320, seed=3)  # more held-out pairs than the 32 always scored
    budget = 20
    started = time.monotonic()
    res = run_engine("reward", "--profile", "busy", "--home", str(home.root), "--time-budget", f"{budget}s")
    took = time.monotonic() - started
    assert res.code == 0, res.out + res.err
    assert took < budget + 8, f"took {took:.1f}s for a {budget}s budget:\n{res.out}\n{res.err}"
    (rd,) = runs.list_runs(home, "busy", kinds=["reward"])
    report = json.loads(rd.report_json.read_text())
    assert report["stopped"] == "budget" and report["elapsed_s"] < budget + 8
    assert report["budget"]["time_budget"] == f"{budget}s"
    assert report["eval"]["n"] < report["budget"]["eval_total"]
    assert report["calibration"]["n"] < report["calibration"]["of"]
    assert any("held-out pairs" in c for c in report["budget"]["cuts"])
    assert "cut to fit: evaluated on " in res.out and " training replies" in res.out


def test_reward_passes_default_to_three_for_small_sets_and_about_a_thousand_pairs_for_large_ones():
    from engine.reward.train import auto_epochs

    assert auto_epochs(40) == 3.0 and auto_epochs(143) == 3.0  # a person's tens of picks: three passes
    assert auto_epochs(500) == 2.0 and auto_epochs(937) == 1_000 / 937
    assert auto_epochs(5_000) == 1.0  # never less than one pass over what the person gave
