"""Reward runs are overnight-safe like finetune runs: time budget, Ctrl-C then --resume, the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine import runs
from engine.feedback import FeedbackLog
from tests.reward.conftest import install_demo, run_engine
from tests.reward.synthetic import write_picks

PROFILE = """
[model]
id = "builtin:demo"
device = "cpu"
dtype = "fp32"
[lora]
r = 4
alpha = 8
dropout = 0.0
[train]
save_steps = 2
[reward]
learning_rate = 3e-3
epochs = 1
batch_size = 2
max_length = 64
"""


@pytest.fixture
def small_home(home, demo_model_dir):
    install_demo(home, demo_model_dir)
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / "small.toml").write_text(PROFILE)
    write_picks(FeedbackLog(home, "small"), 12, seed=2)
    return home


@pytest.mark.slow
def test_time_budget_stops_early_with_a_usable_reward_model(small_home):
    h = str(small_home.root)
    res = run_engine("reward", "--profile", "small", "--home", h, "--time-budget", "1s", "--max-steps", "50")
    assert res.code == 0, res.out + res.err
    (rd,) = runs.list_runs(small_home, "small", kinds=["reward"])
    report = json.loads(rd.report_json.read_text())
    assert report["stopped"] == "budget" and report["steps"] < 50
    assert "stopped: budget" in res.out
    from engine.reward.score import RewardScorer

    scorer = RewardScorer.load(small_home, "small")
    assert scorer.run_id == rd.run_id


def test_lock_refuses_a_second_run(small_home):
    lock = runs.RunLock(small_home, "small", "train").acquire("20990101-000000-sft", what="engine finetune")
    try:
        res = run_engine("reward", "--profile", "small", "--home", str(small_home.root))
    finally:
        lock.release()
    assert res.code == 2 and "is using profile 'small'" in res.err
    assert runs.list_runs(small_home, "small", kinds=["reward"]) == []


def test_resume_refuses_without_an_unfinished_run(small_home):
    res = run_engine("reward", "--profile", "small", "--home", str(small_home.root), "--resume")
    assert res.code == 2 and "no unfinished reward run" in res.err


@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_resume_finishes(small_home):
    env = {**os.environ, "TUNELOOP_HOME": str(small_home.root), "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "reward", "--profile", "small", "--max-steps", "400"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            found = list(small_home.runs_dir("small").glob("*-reward/checkpoints/checkpoint-*/COMPLETE"))
            if found:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == runs.EXIT_INTERRUPTED, out + err
    assert "--resume" in out
    (rd,) = runs.list_runs(small_home, "small", kinds=["reward"])
    assert not rd.finished and rd.read_manifest()["status"] == "interrupted"
    ckpt = runs.newest_complete_checkpoint(rd.checkpoints)
    stopped_at = runs.checkpoint_step(ckpt)
    assert 2 <= stopped_at < 400

    res = run_engine("reward", "--profile", "small", "--home", str(small_home.root), "--max-steps", "400",
                     "--resume", "--time-budget", "20s")
    assert res.code == 0, res.out + res.err
    assert f"resuming reward run {rd.run_id}" in res.out
    report = json.loads(rd.report_json.read_text())
    assert report["steps"] > stopped_at
    steps = [m["step"] for m in runs.read_jsonl(rd.metrics) if "loss" in m]
    # the resumed part continues after the checkpoint instead of starting at step 1 again
    resumed = steps[steps.index(max(s for s in steps if s <= stopped_at)) + 1:]
    assert resumed and min(resumed) > stopped_at
    # once finished there is nothing left to resume
    res = run_engine("reward", "--profile", "small", "--home", str(small_home.root), "--resume")
    assert res.code == 2


@pytest.mark.slow
def test_full_model_reward_run_without_lora(small_home):
    profile = small_home.profiles_dir / "small.toml"
    profile.write_text(PROFILE.replace("[reward]\n", "[reward]\nlora = false\n"))
    res = run_engine("reward", "--profile", "small", "--home", str(small_home.root), "--max-steps", "3")
    assert res.code == 0, res.out + res.err
    (rd,) = runs.list_runs(small_home, "small", kinds=["reward"])
    model_dir = rd.root / "reward_model"
    assert (model_dir / "model.safetensors").is_file() and not (model_dir / "adapter_config.json").exists()
    from engine.reward.score import RewardScorer

    scorer = RewardScorer.load(small_home, "small")
    raw = scorer.score([{"role": "user", "content": "What is 1 + 1?"}], "The answer is 2.")
    report = json.loads(rd.report_json.read_text())
    assert report["steps"] == 3 and isinstance(raw, float)
