"""Adding a training method is one module and one row (issue 27): a toy method registered here, and nowhere else,
runs through ``engine finetune`` (plan, stages, gate, report) like a built-in one; an unknown method is one
sentence."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.train import methods
from tests.train.conftest import converse, run_engine


@pytest.fixture
def toy(monkeypatch):
    row = methods.Method("toy", methods.RowKind.SFT, "tests.train.toy_recipe", rehearsal=False, preference=False,
                         needs=methods.Needs("liked replies", lambda counts: counts.get("sft", 0), "like {n} more"),
                         gate_checks=("liked_logprob",), loss_metric="-liked_logprob", masks_replies=True)
    monkeypatch.setitem(methods.METHODS, "toy", row)
    return row


@pytest.mark.slow
def test_a_method_registered_in_one_row_runs_through_finetune(toy, log, demo_home):
    for i in range(3):
        _, (reply,) = converse(log, f"Question number {i}?", [f"draft {i}"])
        log.rate(reply["id"], 1)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "toy", "--home", str(demo_home.root))
    assert code == 0, out
    assert "asked for toy: 3 liked replies" in out and "liked_logprob" in out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    assert run_dir.name.endswith("-toy")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    report = json.loads((run_dir / "report.json").read_text())
    assert manifest["plan"] == ["toy"] and report["method"] == "toy" and report["steps"] in (2, 4)
    assert [c["metric"] for c in report["gate"]["checks"]] == ["liked_logprob"]
    if report["promoted"]:
        assert adapters.promoted_run(demo_home, "demo") == run_dir.name


def test_too_little_for_the_toy_method_and_an_unknown_method_are_one_sentence(toy, log, demo_home):
    code, out = run_engine("finetune", "--profile", "demo", "--method", "toy", "--home", str(demo_home.root))
    assert code == 2 and "toy needs at least 1 liked replies and the feedback log has 0: like 1 more." in out
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sftt", "--home", str(demo_home.root))
    assert code == 2 and "--method 'sftt' is not one of auto, sft, dpo, kto, rloo, grpo, toy." in out
