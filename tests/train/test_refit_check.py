"""The refit on every row is a model the gate has not seen: the regression check runs on it too, and when it
fails the gated candidate is what gets published (engine.train.finish.check_refit)."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from tests.train.conftest import converse, run_engine


def _feedback(log, n=4):
    for i in range(n):
        _, (reply,) = converse(log, f"Question number {i}?", [f"draft {i}"])
        log.edit(reply["id"], f"The answer to question {i} is short.")


@pytest.mark.slow
def test_a_refit_that_breaks_known_answers_is_not_published_and_the_candidate_is(log, demo_home, monkeypatch):
    from engine.train import finish

    real = finish._regression_check

    def refit_breaks(home, profile, rd, settings, adapter, stop=None, say=None):
        check = real(home, profile, rd, settings, adapter, stop, say)
        if "refit-" in str(adapter):  # as if the refit had answered 5 of 20 known questions wrongly
            check = {**check, "ok": False, "changed": 5, "known": 20, "allowed": 1,
                     "reason": "regression check: 5 of 20 ordinary questions ... changed; not promoted."}
        return check

    monkeypatch.setattr(finish, "_regression_check", refit_breaks)
    _feedback(log)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "3",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_id = adapters.promoted_run(demo_home, "demo")
    assert run_id is not None
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["adapter_rows"] == "train" and "the candidate is promoted" in report["stopped"]
    assert "refit on every row: 5 of 20 known answers changed (refused" in out
    published = demo_home.run_dir("demo", run_id) / "adapter" / "adapter_model.safetensors"
    candidate = demo_home.run_dir("demo", run_id) / "stages" / "1-sft" / "adapter" / "adapter_model.safetensors"
    assert published.read_bytes() == candidate.read_bytes()


@pytest.mark.slow
def test_a_refit_that_keeps_the_answers_is_published(log, demo_home):
    _feedback(log)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "3",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_id = adapters.promoted_run(demo_home, "demo")
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["adapter_rows"] == "all" and report["gate"]["refit_regression"]["ok"] is True
    assert "refit on every row: 0 of 0 known answers changed (kept)" in out
