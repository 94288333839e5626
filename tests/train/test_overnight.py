"""Overnight safety: SIGKILL then --resume, SIGTERM saves and exits 3, time budget, multi-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import adapters
from tests.train.conftest import converse, run_engine

REPO = Path(__file__).resolve().parents[2]


def _feedback(log, n=3):
    for i in range(n):
        _, (reply,) = converse(log, f"Question number {i}?", [f"draft {i}"])
        log.edit(reply["id"], f"The answer to question {i} is short.")


def _start(home, *args) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TUNELOOP_HOME=str(home.root), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "engine", "finetune", "--profile", "demo", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait_for_checkpoint(home, proc, timeout=300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(home.runs_dir("demo").glob("*/checkpoints/*/checkpoint-*/COMPLETE"))
        if found:
            return found[0].parent
        if proc.poll() is not None:
            raise AssertionError("run ended before its first checkpoint:\n" + proc.stdout.read())
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint appeared")


def _only_run(home):
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_sigkill_after_first_checkpoint_then_resume_matches_an_uninterrupted_run(log, demo_home):
    _feedback(log)
    flags = ["--method", "sft", "--from", "base", "--max-steps", "8", "--save-steps", "2"]
    proc = _start(demo_home, *flags)
    _wait_for_checkpoint(demo_home, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    run_dir = _only_run(demo_home)
    assert not (run_dir / "report.json").exists() and not (run_dir / "adapter").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())

    # resume refuses changed settings and changed frozen data, naming what differs
    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--max-steps", "20",
                           "--home", str(demo_home.root))
    assert code == 2 and "--max-steps 20 differs" in out
    frozen = run_dir / "data" / "sft.train.jsonl"
    original = frozen.read_bytes()
    frozen.write_bytes(original + b'{"messages": []}\n')
    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--home", str(demo_home.root))
    assert code == 2 and "frozen data" in out and "changed" in out
    frozen.write_bytes(original)
    # a run started before a setting existed (here: as if tuneloop had gained gate_accuracy_margin since) resumes
    older = json.loads((run_dir / "manifest.json").read_text())
    del older["profile_settings"]["train"]["gate_accuracy_margin"]
    (run_dir / "manifest.json").write_text(json.dumps(older))

    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--home", str(demo_home.root))
    assert code == 0, out
    assert f"resuming run {run_dir.name}" in out and "resuming from checkpoint-" in out
    resumed = json.loads((run_dir / "report.json").read_text())
    # 8 steps for the candidate, and 8 more for the refit on every row once the gate passed it
    assert resumed["steps"] == (16 if resumed["promoted"] else 8)
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    steps_logged = {json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()}
    assert set(range(1, 9)) <= steps_logged
    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--home", str(demo_home.root))
    assert code == 2 and "no unfinished finetune run" in out

    # the same command uninterrupted: same frozen data, same number of steps, (nearly) the same weights
    code, out = run_engine("finetune", "--profile", "demo", *flags, "--home", str(demo_home.root))
    assert code == 0, out
    other = sorted(p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir() and p != run_dir)[-1]
    assert json.loads((other / "manifest.json").read_text())["data"] == manifest["data"]
    assert json.loads((other / "report.json").read_text())["steps"] == resumed["steps"]

    from safetensors.torch import load_file

    a = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(other / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-3, worst


@pytest.mark.slow
def test_sigterm_saves_a_complete_checkpoint_and_exits_3_with_how_to_resume(log, demo_home):
    _feedback(log, 2)
    proc = _start(demo_home, "--method", "sft", "--from", "base", "--max-steps", "400", "--save-steps", "200")
    while not list(demo_home.runs_dir("demo").glob("*/metrics.jsonl")):  # training has started
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 3, out
    assert "stopped by SIGTERM" in out and "engine finetune --profile demo --resume" in out
    run_dir = _only_run(demo_home)
    from engine.runs import newest_complete_checkpoint

    ckpt = newest_complete_checkpoint(run_dir / "checkpoints" / "1-sft")
    assert ckpt is not None and int(ckpt.name.split("-")[1]) < 400
    assert not (run_dir / "report.json").exists()


@pytest.mark.slow
def test_time_budget_stops_early_with_a_usable_adapter(log, demo_home):
    _feedback(log, 2)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "500",
                           "--time-budget", "1s", "--home", str(demo_home.root))
    assert code == 0, out
    assert "stopped early: time budget reached" in out
    run_dir = _only_run(demo_home)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["stopped"] == "time budget reached" and 1 <= report["steps"] < 500
    assert report["eval"]["new"]  # the adapter was loaded from run_dir/adapter and evaluated
    assert (run_dir / "adapter" / "adapter_config.json").is_file()


@pytest.mark.slow
def test_two_processes_data_parallel_get_one_run_and_a_promoted_adapter(log, demo_home):
    _feedback(log, 4)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TUNELOOP_HOME=str(demo_home.root), OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "engine", "finetune", "--profile", "demo",
                           "--method", "sft", "--max-steps", "6", "--save-steps", "3"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = _only_run(demo_home)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["world_size"] == 2
    assert proc.stdout.count("PROMOTED") == 1  # only rank 0 reports
    assert adapters.promoted_run(demo_home, "demo") == run_dir.name
    assert json.loads((run_dir / "report.json").read_text())["steps"] == 12  # 6 candidate + 6 refit
    # checkpoints were saved by all ranks together and marked complete once
    assert sorted(p.parent.name for p in run_dir.glob("checkpoints/1-sft/*/COMPLETE")) == ["checkpoint-3",
                                                                                          "checkpoint-6"]


@pytest.mark.slow
def test_sigterm_during_the_gate_stops_within_seconds_and_resume_judges_again(log, demo_home):
    """The gate scores held-out rows and asks the regression questions: a signal there ends the run within a row or
    a batch (it used to run the whole evaluation first, 36-51 s on the demo model), exit 3, nothing promoted."""
    from engine.profiles import BUILTIN_DIR

    _feedback(log, 30)
    demo = (BUILTIN_DIR / "demo.toml").read_text()
    demo_home.profiles_dir.mkdir(parents=True, exist_ok=True)  # the whole regression set: a gate of some seconds
    (demo_home.profiles_dir / "demo.toml").write_text(demo.replace("gate_regression_prompts = 16",
                                                                   "gate_regression_prompts = 118"))
    proc = _start(demo_home, "--method", "sft", "--from", "base", "--max-steps", "4")
    deadline = time.monotonic() + 300
    while not list(demo_home.runs_dir("demo").glob("*/stages/1-sft/COMPLETE")):  # the candidate is trained
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    time.sleep(1.0)  # into the gate: loading, scoring, the regression questions
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == 3, out
    assert "stopped by SIGTERM while evaluating the new adapter" in out and "--resume" in out
    assert took < 15, f"{took:.1f} s from SIGTERM to exit:\n{out}"
    run_dir = _only_run(demo_home)
    assert not (run_dir / "gate.json").exists() and not (run_dir / "report.json").exists()
    assert adapters.promoted_run(demo_home, "demo") is None
    code, out = run_engine("finetune", "--profile", "demo", "--resume", "--home", str(demo_home.root))
    assert code == 0 and "regression check:" in out, out
    assert (run_dir / "report.json").exists()


@pytest.mark.slow
def test_a_signal_after_the_adapter_is_published_is_said_and_exits_3(log, demo_home, monkeypatch):
    """SIGTERM during the report, after the promotion: the run finished, and it says the signal came (it exited 0
    without a word)."""
    from engine.train import finish

    real = finish.finish

    def signal_after_publish(*args, **kwargs):
        report = real(*args, **kwargs)
        args[-1].request("SIGTERM")  # the StopRequest, as the handler sets it
        return report

    monkeypatch.setattr(finish, "finish", signal_after_publish)
    _feedback(log, 1)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "2",
                           "--home", str(demo_home.root))
    assert code == 3, out
    run_id = _only_run(demo_home).name
    assert f"SIGTERM arrived after run {run_id} was published; it finished first (promoted)" in out
    assert adapters.promoted_run(demo_home, "demo") == run_id and (_only_run(demo_home) / "report.json").exists()
