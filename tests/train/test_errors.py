"""Problems a user can cause end in one sentence and exit 2, before any run directory exists."""

from __future__ import annotations

import errno
import json

import pytest

from engine import adapters, runs
from engine.errors import UserError
from engine.safe_files import ensure_dir
from tests.train.conftest import converse, run_engine


def _no_runs(home, profile="demo"):
    root = home.runs_dir(profile)
    return not root.exists() or not [p for p in root.iterdir() if p.is_dir() and p.name[0].isdigit()]


def test_promoted_adapter_of_another_base_is_refused(log, demo_home):
    _, (reply,) = converse(log, "Hi?", ["Hello."])
    log.rate(reply["id"], 1)
    fake = demo_home.run_dir("demo", "20200101-000000-sft") / "adapter"
    ensure_dir(fake)
    (fake / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"}))
    (fake / "adapter_model.safetensors").write_bytes(b"")  # refused for its base before its weights are read
    adapters.set_promoted(demo_home, "demo", "20200101-000000-sft")
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 2 and "was trained on 'Qwen/Qwen2.5-0.5B-Instruct'" in out and "--from base" in out
    assert "Traceback" not in out


def test_missing_base_model_is_one_sentence(home):
    ensure_dir(home.profiles_dir)
    (home.profiles_dir / "gone.toml").write_text('[model]\nid = "/nonexistent/model-dir"\n[train]\nmin_rows = 1\n')
    from engine.feedback import FeedbackLog

    _, (reply,) = converse(FeedbackLog(home, "gone"), "Hi?", ["Hello."])
    FeedbackLog(home, "gone").rate(reply["id"], 1)
    code, out = run_engine("finetune", "--profile", "gone", "--method", "sft", "--home", str(home.root))
    assert code == 2 and "/nonexistent/model-dir" in out and "Traceback" not in out
    assert _no_runs(home, "gone")


def test_bad_flags_are_refused_before_anything_runs(log, demo_home):
    code, out = run_engine("finetune", "--profile", "demo", "--time-budget", "soon", "--home", str(demo_home.root))
    assert code == 2 and "write it like 6h, 90m, 30s" in out
    code, out = run_engine("finetune", "--profile", "demo", "--learning-rate", "3", "--home", str(demo_home.root))
    assert code == 2 and "--learning-rate 3.0 must be a finite number > 0 and < 1" in out
    code, out = run_engine("finetune", "--profile", "demo", "--method", "ppo", "--home", str(demo_home.root))
    assert code == 2 and "'ppo' is not one of" in out
    assert _no_runs(demo_home)


def test_full_disk_while_publishing_leaves_no_adapter(tmp_path, monkeypatch):
    target = tmp_path / "adapter"

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match="is full .* free some space and run again with --resume"):
        with runs.publish_dir(target) as tmp:
            (tmp / "adapter_config.json").write_text("{}")
            monkeypatch.setattr(runs.os, "rename", full)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_tensorboard_flag_needs_the_package(log, demo_home):
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed here; the refusal only applies without it")
    except ImportError:
        pass
    code, out = run_engine("finetune", "--profile", "demo", "--tensorboard", "--home", str(demo_home.root))
    assert code == 2 and "pip install 'tuneloop[plots]'" in out
    assert _no_runs(demo_home)


@pytest.mark.slow
def test_gate_uses_reward_without_a_reward_model_skips_that_check_and_says_so(log, demo_home):
    from engine.profiles import BUILTIN_DIR

    ensure_dir(demo_home.profiles_dir)
    text = (BUILTIN_DIR / "demo.toml").read_text().replace("[train]\n", "[train]\ngate_uses_reward = true\n")
    (demo_home.profiles_dir / "demo.toml").write_text(text)
    _, (reply,) = converse(log, "Hi?", ["Hello."])
    log.rate(reply["id"], 1)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "2",
                           "--home", str(demo_home.root))
    assert code == 0, out
    assert "reward check: skipped (no reward model" in out
    (run_id,) = adapters.run_ids(demo_home, "demo")
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["gate"]["reward"]["skipped"].startswith("no reward model")


@pytest.mark.slow
def test_qlora_on_a_cpu_is_one_sentence_before_any_run(log, demo_home):
    from engine.feedback import FeedbackLog
    from tests.conftest import add_user_profile

    add_user_profile(demo_home, "q", '[model]\nid = "builtin:demo"\ndevice = "cpu"\n[train]\nquantize = "4bit"\n'
                                     'min_rows = 1\n')
    _, (reply,) = converse(FeedbackLog(demo_home, "q"), "Hi?", ["Hello."])
    FeedbackLog(demo_home, "q").rate(reply["id"], +1)
    code, out = run_engine("finetune", "--profile", "q", "--home", str(demo_home.root))
    assert code == 2 and "train.quantize' = '4bit' needs a CUDA GPU" in out and "Traceback" not in out
    assert not [p for p in demo_home.runs_dir("q").glob("*") if p.is_dir()]  # no run directory was made
