"""A home that cannot be written (a system folder, a file where the folder should be) is one sentence
naming the folder on every command, never a traceback (issue 11: `engine demo-model --home <unwritable>`
printed a 42-line traceback)."""

from __future__ import annotations

import json

import pytest

from tests.engine_cli import run_engine

COMMANDS = [
    ["demo-model"],
    ["profiles"],
    ["stats"],
    ["export", "-f", "sft", "-o", "{tmp}/out.jsonl"],
    ["import", "{rows}"],
    ["adapters"],
    ["adapters", "use", "base"],
    ["adapters", "rollback"],
    ["finetune"],
    ["reward"],
    ["score", "{rows}"],
    ["eval"],
    ["generate", "hello"],
    ["generate", "--record", "hello"],
]


def _homes(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    return {"file-in-the-way": a_file / "home", "sysfs": "/sys/tuneloop-test-home"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file-in-the-way", "sysfs"])
@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_unwritable_home_is_one_sentence(tmp_path, fault_stats, command, kind):
    home = _homes(tmp_path)[kind]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": [{"role": "user", "content": "Hi?"}],
                                "chosen": [{"role": "assistant", "content": "Hello."}],
                                "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n")
    argv = [a.format(tmp=tmp_path, rows=rows) for a in command]
    code, out = run_engine(*argv, "--home", str(home))
    fault_stats["unwritable-home commands checked"] += 1
    assert "Traceback" not in out, out
    if code != 0:
        assert code == 2, out
        errors = [line for line in out.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, out
    if command[0] in ("demo-model", "import", "finetune", "reward", "generate"):
        assert code == 2, out  # these must write into the home
        assert "cannot write in " in out or "no finished" in out or "preference pair" in out or "feedback" in out, out


@pytest.mark.parametrize("blocked, command", [
    ("runs", ["finetune", "--method", "sft"]),
    ("runs", ["reward"]),
    ("runs", ["adapters", "use", "base"]),
    ("feedback", ["import", "{rows}"]),
    ("feedback", ["generate", "--record", "hello"]),
    ("models", ["demo-model", "--force"]),
])
@pytest.mark.slow
def test_a_file_where_a_home_folder_should_be_is_one_sentence(demo_home, tmp_path, blocked, command):
    """Feedback to train on exists, so the command gets as far as writing its folder."""
    from engine.feedback import FeedbackLog
    from tests.train.conftest import converse

    log = FeedbackLog(demo_home, "demo")
    for i in range(3):
        _, (good, bad) = converse(log, f"Question {i}?", [f"Good {i}.", f"Bad {i}."])
        log.rate(good["id"], 1)
        log.choose(good["id"], [good["id"], bad["id"]], "regenerate")
    target = demo_home.root / blocked
    if blocked == "models":
        import shutil

        shutil.rmtree(target)
    elif blocked == "feedback":
        import shutil

        shutil.rmtree(target)
    target.write_text("in the way\n")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": [{"role": "user", "content": "Hi?"}],
                                "chosen": [{"role": "assistant", "content": "Hello."}],
                                "rejected": [{"role": "assistant", "content": "Go away."}]}) + "\n")
    argv = [a.format(rows=rows) for a in command]
    code, out = run_engine(*argv, "--profile", "demo", "--home", str(demo_home.root)) if command[0] != "demo-model" \
        else run_engine(*argv, "--home", str(demo_home.root))
    assert code == 2 and "Traceback" not in out, out
    assert str(target) in out, out
