"""RL on the demo model with real TRL: a reward that pays for length is climbed and the gate refuses the
result; `engine finetune --method rloo` against a reward model trained by `engine reward` survives SIGKILL
and resumes. (The demo model's random weights give RL no lever but one: when to stop. So the policy first
learns to answer "OK." by SFT, then RL against a length-paying reward learns to keep talking.)"""

from __future__ import annotations

import json
import signal
import uuid

import pytest

from engine import adapters
from engine.feedback import FeedbackLog
from engine.train.finetune import FinetuneOptions, RewardHooks, run
from engine.train.plan import RewardModel
from tests.conftest import add_user_profile
from tests.train.conftest import run_engine
from tests.train.test_overnight import _start, _wait_for_checkpoint

PROFILE = """[model]
id = "builtin:demo"
device = "cpu"
dtype = "fp32"
[lora]
r = 8
alpha = 16
dropout = 0.0
[train]
min_rows = 1
max_length = 256
save_steps = 4
# the SFT run below makes a one-word ("OK.") adapter on purpose, as RL's starting point; the regression check
# would rightly call it collapsed (tests/train/test_regression.py): this test is about the RL gate's own checks
gate_regression_prompts = 0
[rl]
samples_per_prompt = 4
prompts_per_step = 2
steps = 12
learning_rate = 1e-2
max_reply_tokens = 16
gate_max_kl = 1000.0
stop_kl = 1000.0
"""


class PaysForLength:
    """A reward model built in the test: longer replies score higher (the hack the gate must catch)."""

    run_id = "pays-for-length"

    def score_many(self, items):
        return [len(text) / 10 for _, text in items]


HOOKS = RewardHooks(load_scorer=lambda home, profile: PaysForLength(), win_rate=None,
                    newest=lambda home, profile: RewardModel("pays-for-length", 0.9),
                    load_run=lambda home, profile, run_id: PaysForLength())


def _short_answers(log: FeedbackLog, n: int = 8) -> None:
    for i in range(n):
        conv = uuid.uuid4().hex
        user = log.add_message(conv, None, "user", f"Say something about thing {i}.")
        reply = log.add_message(conv, user["id"], "assistant", f"draft {i}",
                                generation={"system_prompt": "You are a helpful assistant."})
        log.edit(reply["id"], "OK.")


@pytest.mark.slow
def test_rl_climbs_a_length_reward_and_the_gate_refuses_the_longer_replies(demo_home):
    add_user_profile(demo_home, "lenhack", PROFILE)
    _short_answers(FeedbackLog(demo_home, "lenhack"))
    sft = run(demo_home, "lenhack", FinetuneOptions(method="sft", start_from="base", machine_revisions=False,
                                                    overrides={"epochs": 20.0, "learning_rate": 5e-3}))
    assert sft.report and sft.report["promoted"], sft.message

    rl = run(demo_home, "lenhack", FinetuneOptions(method="rloo", machine_revisions=False, reward=HOOKS))
    run_dir = demo_home.run_dir("lenhack", rl.run_id)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["plan"] == ["rloo"] and manifest["reward_model"]["run_id"] == "pays-for-length"
    assert manifest["parent_adapter"] == sft.run_id  # RL continues the adapter in use; it is the KL reference
    rewards = [r["reward"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
               if r.get("stage") == "rloo" and "reward" in r]
    assert len(rewards) >= 12 and sum(rewards[-3:]) > 2 * sum(rewards[:3]), rewards  # the training reward rose
    assert sorted(p.name for p in (run_dir / "checkpoints" / "1-rloo").glob("checkpoint-*")) == \
        ["checkpoint-12", "checkpoint-8"]
    report = rl.report or {}
    assert not report["promoted"]
    assert report["reason"].startswith("its held-out replies grew longer than the reference's (length_ratio")
    measures = report["gate"]["rl"]["measures"]
    assert measures["length_new"] > 1.5 * measures["length_reference"] and measures["reward_win_rate"] >= 0.5
    assert adapters.promoted_run(demo_home, "lenhack") == sft.run_id  # the adapter in use is untouched


@pytest.fixture
def reward_home(demo_home):
    """The demo profile with 24 answer-vs-refusal picks and a reward model trained on them by `engine reward`."""
    from tests.reward.synthetic import write_picks

    write_picks(FeedbackLog(demo_home, "demo"), 24, seed=3)
    code, out = run_engine("reward", "--profile", "demo", "--epochs", "2", "--home", str(demo_home.root))
    assert code == 0, out
    return demo_home


@pytest.mark.slow
def test_rloo_against_the_engine_reward_model_resumes_after_sigkill(reward_home):
    flags = ["--method", "rloo", "--from", "base", "--max-steps", "6", "--save-steps", "2", "--no-machine-revisions"]
    proc = _start(reward_home, *flags)
    _wait_for_checkpoint(reward_home, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (run_dir,) = [p for p in reward_home.runs_dir("demo").iterdir() if p.name.endswith("-rloo")]
    assert not (run_dir / "report.json").exists()

    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--home", str(reward_home.root))
    assert code == 0, out
    assert "[rloo] resuming from checkpoint-" in out
    report = json.loads((run_dir / "report.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (reward_run,) = [p.name for p in reward_home.runs_dir("demo").iterdir() if p.name.endswith("-reward")]
    assert manifest["reward_model"]["run_id"] == reward_run
    assert report["method"] == "rloo" and report["gate"]["rl"]["reward_run"] == reward_run
    assert "RL checks on" in out and "reward [rloo]" in out and ("PROMOTED" in out)
    code, listing = run_engine("adapters", "--profile", "demo", "--home", str(reward_home.root))
    assert code == 0 and run_dir.name in listing and "rloo" in listing


@pytest.mark.slow
def test_grpo_runs_through_the_same_recipe(demo_home):
    # one held-out pair decides pref_accuracy (0, 1/2 or 1) before the RL checks run: an accuracy margin of 1
    # lets this test reach them whichever way two sampled steps moved it
    add_user_profile(demo_home, "lenhack", PROFILE.replace("save_steps = 4",
                                                           "save_steps = 4\ngate_accuracy_margin = 1.0"))
    _short_answers(FeedbackLog(demo_home, "lenhack"), n=4)
    result = run(demo_home, "lenhack", FinetuneOptions(method="grpo", start_from="base", machine_revisions=False,
                                                       reward=HOOKS, overrides={"max_steps": 2}))
    report = result.report or {}
    assert report["method"] == "grpo" and report["steps"] == 2, result.message
    assert report["gate"]["rl"]["measures"]["prompts"] >= 1
