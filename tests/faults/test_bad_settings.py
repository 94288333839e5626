"""Bad settings, in a profile file or on the command line, end in one sentence and exit 2 before any run
directory exists (issue 11: values were type-checked but not range-checked; issue 12: ``lora.r = 0``,
``learning_rate = nan`` ... crashed mid-run and left an orphan run that ``--resume`` would pick up).
"""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.feedback import FeedbackLog
from engine.profiles import load_profile
from engine.safe_files import ensure_dir
from tests.engine_cli import run_engine
from tests.train.conftest import converse

# (table, key, TOML value, what the sentence says is allowed)
BAD_VALUES = [
    ("generation", "top_p", "7.0", "> 0 and <= 1"),
    ("generation", "max_new_tokens", "-3", ">= 1"),
    ("generation", "temperature", "nan", "finite number >= 0"),
    ("train", "batch_size", "0", ">= 1"),
    ("train", "eval_fraction", "5.0", ">= 0 and < 1"),
    ("train", "learning_rate", "nan", "finite number > 0 and < 1"),
    ("train", "epochs", "inf", "finite number > 0"),
    ("train", "max_length", "0", ">= 16"),
    ("train", "max_steps", "0", "-1 (run all epochs) or an integer >= 1"),
    ("train", "method", "'ppo'", "one of auto, sft, dpo, kto"),
    ("lora", "r", "0", ">= 1"),
    ("lora", "dropout", "2.0", ">= 0 and < 1"),
    ("lora", "target_modules", "[]", "non-empty list of module names"),
    ("reward", "batch_size", "0", ">= 1"),
    ("reward", "learning_rate", "-1e-4", "> 0 and < 1"),
    ("model", "device", "'tpu'", "auto, cpu, cuda, cuda:N or mps"),
    ("model", "id", "'   '", "non-empty string"),
]


def _no_runs(home, profile: str) -> bool:
    root = home.runs_dir(profile)
    return not root.exists() or not any(p.is_dir() for p in root.iterdir())


def _profile(home, name: str, table: str, key: str, value: str) -> object:
    """A user profile on the demo model with ``[table] key = value`` (and rows enough to train on)."""
    ensure_dir(home.profiles_dir)
    tables = {"model": ['id = "builtin:demo"', 'device = "cpu"'], "train": ["min_rows = 1"]}
    lines = tables.setdefault(table, [])
    lines[:] = [line for line in lines if not line.startswith(f"{key} ")] + [f"{key} = {value}"]
    text = "".join(f"[{t}]\n" + "\n".join(body) + "\n" for t, body in tables.items())
    path = home.profiles_dir / f"{name}.toml"
    path.write_text(text)
    return path


def _feedback(home, profile: str) -> None:
    """Liked replies and preference pairs, so only the bad setting can stop a run."""
    log = FeedbackLog(home, profile)
    for i in range(3):
        _, (good, bad) = converse(log, f"Question {i}?", [f"Good answer {i}.", f"Bad answer {i}."])
        log.rate(good["id"], 1)
        log.rate(bad["id"], -1)


@pytest.mark.parametrize("table, key, value, rule", BAD_VALUES, ids=[f"{t}.{k}={v}" for t, k, v, _ in BAD_VALUES])
def test_bad_profile_value_is_one_sentence(home, fault_stats, table, key, value, rule):
    path = _profile(home, "bad", table, key, value)
    with pytest.raises(UserError) as exc:
        load_profile("bad", home)
    msg = str(exc.value)
    fault_stats["bad settings refused"] += 1
    assert str(path) in msg and f"'{table}.{key}'" in msg and rule in msg and "\n" not in msg, msg


@pytest.mark.parametrize("command", [["finetune"], ["reward"], ["generate", "hello"]])
@pytest.mark.parametrize("table, key, value, rule", [BAD_VALUES[0], BAD_VALUES[5], BAD_VALUES[10]],
                         ids=["top_p=7.0", "learning_rate=nan", "lora.r=0"])
def test_cli_refuses_bad_profile_before_a_run_dir(demo_home, command, table, key, value, rule):
    path = _profile(demo_home, "bad", table, key, value)
    _feedback(demo_home, "bad")
    code, out = run_engine(*command, "--profile", "bad", "--home", str(demo_home.root))
    assert code == 2, out
    assert "Traceback" not in out and f"error: {path}: key '{table}.{key}' must be" in out and rule in out, out
    assert _no_runs(demo_home, "bad")


FLAG_CASES = [
    (["finetune"], "--learning-rate", "nan", "must be a finite number > 0 and < 1"),
    (["finetune"], "--epochs", "inf", "must be a finite number > 0"),
    (["finetune"], "--batch-size", "0", "must be an integer >= 1"),
    (["finetune"], "--grad-accum", "0", "must be an integer >= 1"),
    (["finetune"], "--max-length", "0", "must be an integer >= 16"),
    (["finetune"], "--max-steps", "0", "must be -1 (run all epochs) or an integer >= 1"),
    (["finetune"], "--seed", "-1", "must be an integer >= 0"),
    (["finetune"], "--save-minutes", "nan", "must be a finite number >= 0"),
    (["reward"], "--learning-rate", "5", "must be a finite number > 0 and < 1"),
    (["reward"], "--epochs", "nan", "must be a finite number > 0"),
    (["reward"], "--batch-size", "0", "must be an integer >= 1"),
    (["reward"], "--max-steps", "0", "must be -1 (run all epochs) or an integer >= 1"),
    (["generate", "hello"], "--max-new-tokens", "-3", "must be an integer >= 1"),
    (["generate", "hello"], "--temperature", "nan", "must be a finite number >= 0"),
    (["generate", "hello"], "--top-p", "7", "must be a finite number > 0 and <= 1"),
    (["eval"], "--max-new-tokens", "0", "must be an integer >= 1"),
]


@pytest.mark.parametrize("command, flag, value, rule", FLAG_CASES, ids=[f"{c[0]} {f} {v}" for c, f, v, _ in FLAG_CASES])
def test_cli_flag_obeys_the_settings_rule(demo_home, command, flag, value, rule):
    _feedback(demo_home, "demo")
    code, out = run_engine(*command, flag, value, "--profile", "demo", "--home", str(demo_home.root))
    assert code == 2, out
    assert f"error: {flag} " in out and rule in out and "Traceback" not in out, out
    assert _no_runs(demo_home, "demo")


@pytest.mark.parametrize("command", [["finetune", "--method", "sft"], ["reward"]])
def test_target_module_the_model_lacks_is_refused_before_a_run_dir(demo_home, command):
    path = _profile(demo_home, "tm", "lora", "target_modules", '["q_proj", "attn_qkv"]')
    _feedback(demo_home, "tm")
    code, out = run_engine(*command, "--profile", "tm", "--home", str(demo_home.root))
    assert code == 2, out
    assert f"{path}: key 'lora.target_modules' names 'attn_qkv', which the model does not have" in out, out
    assert "q_proj" in out and "Traceback" not in out
    assert _no_runs(demo_home, "tm")
