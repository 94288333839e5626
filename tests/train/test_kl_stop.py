"""An RL stage stops before it drifts (rl.stop_kl, engine/train/kl_stop.py): once the KL logged for a step's
replies passes the limit, the stage stops with the weights of the last step under it, and says so."""

from __future__ import annotations

import io
import json

import pytest

from engine.feedback import FeedbackLog
from engine.train.finetune import FinetuneOptions, run
from tests.conftest import add_user_profile
from tests.train.test_rl_demo import HOOKS, PROFILE, _short_answers


def _steps(callback, model, kls: list[float]):
    """Run ``callback`` through one step per KL value as the Trainer would: step begin, the update (every weight
    += 1), the log line of that step's replies. Returns the weights at each step's start."""
    import torch
    from transformers import TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(output_dir="/nonexistent", report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    starts = []
    for kl in kls:
        callback.on_step_begin(args, state, control, model=model)
        starts.append(model.weight.detach().clone())
        with torch.no_grad():
            model.weight += 1.0
        state.global_step += 1
        callback.on_log(args, state, control, logs={"loss": 0.1, "kl": kl}, model=model)
        if control.should_training_stop:
            break
    return starts, control


def test_past_the_limit_the_weights_of_the_last_step_under_it_come_back():
    import torch

    from engine.train.kl_stop import StopBeforeDrift

    said = []
    model = torch.nn.Linear(3, 2)
    callback = StopBeforeDrift(0.2, say=said.append)
    starts, control = _steps(callback, model, [0.0, 0.05, 0.15, 0.9, 1.5])
    assert control.should_training_stop and len(starts) == 4  # the fifth step never ran
    assert torch.equal(model.weight, starts[2])  # step 3's replies were the last under 0.2: its weights are back
    assert callback.stopped_at == 4 and callback.kept_step == 3
    assert callback.record()["kl"] == [{"step": 1, "kl": 0.0}, {"step": 2, "kl": 0.05}, {"step": 3, "kl": 0.15},
                                       {"step": 4, "kl": 0.9}]
    assert said == ["KL to the reference 0.900 nats/token at step 4, past rl.stop_kl = 0.2: stopping, with the "
                    "weights the policy had at step 3 (its replies' KL 0.150)"]


def test_a_run_under_the_limit_trains_every_step_and_a_nan_kl_counts_as_past_it():
    import torch

    from engine.train.kl_stop import StopBeforeDrift

    model = torch.nn.Linear(3, 2)
    callback = StopBeforeDrift(0.2)
    starts, control = _steps(callback, model, [0.0, 0.1, 0.19])
    assert not control.should_training_stop and callback.stopped_at is None and callback.kept_step is None
    assert torch.equal(model.weight, starts[2] + 1.0)  # nothing put back

    callback = StopBeforeDrift(0.2)
    starts, control = _steps(callback, model, [0.0, float("nan")])
    assert control.should_training_stop and callback.kept_step == 1 and torch.equal(model.weight, starts[0])


@pytest.mark.slow
def test_an_rl_stage_that_drifts_stops_and_the_gate_judges_the_step_it_kept(demo_home):
    # the length-paying reward at 1e-2 moves the demo policy far from its reference within a few steps
    profile = PROFILE.replace("stop_kl = 1000.0", "stop_kl = 0.05")
    add_user_profile(demo_home, "drift", profile)
    _short_answers(FeedbackLog(demo_home, "drift"))
    sft = run(demo_home, "drift", FinetuneOptions(method="sft", start_from="base", machine_revisions=False,
                                                  overrides={"epochs": 20.0, "learning_rate": 5e-3}))
    assert sft.report and sft.report["promoted"], sft.message
    out = io.StringIO()
    rl = run(demo_home, "drift", FinetuneOptions(method="rloo", machine_revisions=False, reward=HOOKS, stream=out))
    run_dir = demo_home.run_dir("drift", rl.run_id)
    marker = json.loads((run_dir / "stages" / "1-rloo" / "COMPLETE").read_text())
    assert marker["kl_stopped_at"] is not None and marker["kl_stopped_at"] < 12, marker  # the profile asks 12
    assert marker["steps"] == marker["kl_stopped_at"]
    kls = {h["step"]: h["kl"] for h in marker["kl"]}
    assert kls[marker["kl_stopped_at"]] > 0.05 and kls[marker["kl_kept_step"]] <= 0.05
    assert ("past rl.stop_kl = 0.05: stopping, with the weights the policy had at step "
            f"{marker['kl_kept_step']}") in out.getvalue(), out.getvalue()
    assert rl.report is not None and rl.report["steps"] == marker["steps"]
