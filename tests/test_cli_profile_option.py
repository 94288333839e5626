"""``--profile`` behaves the same on every command: optional, defaulting to the home's default_profile
(else the built-in default), and a mistyped name is refused with one sentence and exit 2 before
anything is written under it (issue 11: ``engine import -p dmeo`` imported into a new orphan log)."""

from __future__ import annotations

import json

import pytest

from engine.profiles import DEFAULT_PROFILE
from tests.engine_cli import run_engine

COMMANDS = [
    ["import", "{rows}"],
    ["export", "-f", "sft", "-o", "{out}"],
    ["stats"],
    ["adapters"],
    ["adapters", "use", "base"],
    ["adapters", "rollback"],
    ["finetune"],
    ["reward"],
    ["score", "{rows}"],
    ["eval"],
    ["generate", "hello"],
]


def _argv(command, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": [{"role": "user", "content": "Hi?"}],
                                "chosen": [{"role": "assistant", "content": "Hello."}],
                                "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n")
    return [a.format(rows=rows, out=tmp_path / "out.jsonl") for a in command]


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_unknown_profile_is_refused_everywhere(home, tmp_path, command):
    code, out = run_engine(*_argv(command, tmp_path), "-p", "dmeo", "--home", str(home.root))
    assert code == 2, out
    assert "error: no profile named 'dmeo' (available: " in out and "demo" in out and "Traceback" not in out, out
    assert len([line for line in out.splitlines() if line.strip()]) == 1, out
    assert not (home.root / "feedback" / "dmeo").exists() and not (home.root / "runs" / "dmeo").exists()
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("command", [["stats"], ["adapters"], ["import", "{rows}"]], ids=["stats", "adapters", "import"])
def test_profile_defaults_to_config_then_builtin_default(home, tmp_path, command):
    code, out = run_engine(*_argv(command, tmp_path), "--home", str(home.root))
    assert code == 0, out
    if command[0] == "import":
        assert out.strip().endswith(f"into {DEFAULT_PROFILE}")
    home.root.mkdir(parents=True, exist_ok=True)
    home.config_path.write_text('default_profile = "dmeo"\n')
    code, out = run_engine(*_argv(command, tmp_path), "--home", str(home.root))
    assert code == 2 and "no profile named 'dmeo'" in out, out


def test_profile_option_help_is_the_same_everywhere():
    helps = set()
    for command in ("import", "export", "stats", "adapters", "finetune", "reward", "score", "eval", "generate"):
        code, out = run_engine(command, "--help")
        assert code == 0, out
        text = " ".join(out.replace("│", " ").split())
        assert "--profile" in text, command
        helps.add("default_profile" in text and f"else {DEFAULT_PROFILE}" in text)
    assert helps == {True}
