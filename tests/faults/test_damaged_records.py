"""Damaged files in the home are one sentence naming the file, exit 2, and nothing else changed (issue 30).

An independent campaign edited tuneloop's own records by hand and got 19 tracebacks: promoted.json with the
wrong shapes, run manifests and reports that are lists or hold the wrong types, a corrupt trainer state,
truncated or garbage safetensors, an adapter config with ``"r": "x"``, a demo model config with
``hidden_size = "big"``, and prompt or preference files that are nested past Python's recursion limit or hold
a lone surrogate. Each case runs the real CLI on real files and checks the sentence, the exit code, and that
the damaged file (and the pointer) are exactly as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import adapters, runs
from engine.errors import UserError
from tests.engine_cli import run_engine

from .faultlib import fake_unfinished_run, make_adapter

RUN = "20260101-000000-sft"


def one_sentence(code: int, out: str, path: Path | str) -> None:
    assert code == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(path) in errors[0], out


def cli(home, *args: str) -> tuple[int, str]:
    return run_engine(*args, "--profile", "demo", "--home", str(home.root))


# ------------------------------------------------------------------------------- promoted.json

PROMOTED = {
    "history-a-string": {"run_id": None, "history": "yesterday"},
    "history-ints": {"run_id": None, "history": [1, 2]},
    "entry-without-run_id": {"run_id": None, "history": [{"until": 1.0}]},
    "file-a-list": [RUN],
    "run_id-an-int": {"run_id": 7, "history": []},
}


@pytest.mark.parametrize("name", sorted(PROMOTED))
@pytest.mark.parametrize("command", [("adapters", "use", "base"), ("adapters", "rollback"), ("adapters",)])
def test_malformed_promoted_json(home, name, command, fault_stats):
    path = adapters.promoted_file(home, "demo")
    home.check_dir(path.parent, create=True)
    path.write_text(json.dumps(PROMOTED[name]))
    before = path.read_bytes()
    code, out = cli(home, *command)
    one_sentence(code, out, path)
    assert path.read_bytes() == before
    fault_stats["damaged files answered with one sentence"] += 1


# ------------------------------------------------------------------------------- manifest and report

MANIFESTS = {
    "a-list": ["finetune"],
    "plan-an-int": {"command": "finetune", "plan": 3},
    "only-command": {"command": "finetune"},
    "rows-wrong-types": {"command": "x", "rows": {"sft": {"train": "many"}}},
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize("command", [("adapters",), ("finetune", "--resume")])
def test_damaged_manifest(home, name, command, fault_stats):
    root = fake_unfinished_run(home)
    (root / "manifest.json").write_text(json.dumps(MANIFESTS[name]))
    before = (root / "manifest.json").read_bytes()
    code, out = cli(home, *command)
    one_sentence(code, out, root / "manifest.json")
    assert (root / "manifest.json").read_bytes() == before
    fault_stats["damaged files answered with one sentence"] += 1


@pytest.mark.parametrize("report", [[1, 2], {"promoted": "yes"}, {"promoted": True, "eval": [1]}],
                         ids=["a-list", "promoted-a-string", "eval-a-list"])
def test_damaged_report_in_the_listing(home, report, fault_stats):
    root = fake_unfinished_run(home)
    (root / "report.json").write_text(json.dumps(report))
    code, out = cli(home, "adapters")
    one_sentence(code, out, root / "report.json")
    assert RUN in out  # the run is listed, marked
    fault_stats["damaged files answered with one sentence"] += 1


def test_corrupt_trainer_state_is_refused_before_resuming(home, fault_stats):
    root = fake_unfinished_run(home)
    ckpt = root / "checkpoints" / "1-sft" / "checkpoint-2"
    (ckpt / "trainer_state.json").write_text('{"global_step": 2, "log_hist')
    with pytest.raises(UserError, match="trainer_state.json is damaged"):
        runs.newest_complete_checkpoint(ckpt.parent)
    fault_stats["damaged files answered with one sentence"] += 1


# ------------------------------------------------------------------------------- adapters


@pytest.fixture
def adapter_home(demo_home):
    make_adapter(demo_home, "demo", RUN)
    return demo_home


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01 this is not safetensors at all " * 10)


def _config_r_x(path: Path) -> None:
    cfg_path = path.parent / adapters.ADAPTER_CONFIG
    cfg = json.loads(cfg_path.read_text())
    cfg["r"] = "x"
    cfg_path.write_text(json.dumps(cfg))


@pytest.mark.parametrize("damage", [_truncate, _garbage, _config_r_x], ids=["truncated", "garbage", "r-is-x"])
@pytest.mark.parametrize("command", [("generate", "--adapter", RUN, "--max-new-tokens", "2", "Hi"),
                                     ("adapters", "use", RUN)], ids=["generate", "use"])
def test_damaged_adapter_is_refused(adapter_home, damage, command, fault_stats):
    home = adapter_home
    weights = home.run_dir("demo", RUN) / "adapter" / adapters.ADAPTER_WEIGHTS
    damage(weights)
    code, out = cli(home, *command)
    named = weights if damage is not _config_r_x else weights.parent / adapters.ADAPTER_CONFIG
    one_sentence(code, out, named)
    assert adapters.promoted_run(home, "demo") is None
    fault_stats["damaged files answered with one sentence"] += 1


def test_demo_config_with_a_string_size(demo_home, fault_stats):
    home = demo_home
    config = home.demo_model_dir / "config.json"
    data = json.loads(config.read_text())
    data["hidden_size"] = "big"
    config.write_text(json.dumps(data))
    code, out = cli(home, "generate", "--max-new-tokens", "2", "Hi")
    one_sentence(code, out, config)
    assert "engine demo-model --force" in out
    fault_stats["damaged files answered with one sentence"] += 1


# ------------------------------------------------------------------------------- input files

DEEP = "[" * 200_000 + "]" * 200_000


@pytest.mark.parametrize("command", ["generate", "score"])
def test_deeply_nested_json_input(home, tmp_path, command, fault_stats):
    path = tmp_path / "input.jsonl"
    path.write_text(DEEP + "\n")
    args = ("generate", "--prompts", str(path)) if command == "generate" else ("score", str(path))
    code, out = cli(home, *args)
    one_sentence(code, out, path)
    fault_stats["damaged files answered with one sentence"] += 1


def test_lone_surrogate_in_prompts(home, tmp_path, fault_stats):
    path = tmp_path / "prompts.jsonl"
    path.write_text('"fine"\n"bad \\ud800 text"\n')
    code, out = cli(home, "generate", "--prompts", str(path))
    one_sentence(code, out, path)
    assert "prompt 2" in out
    fault_stats["damaged files answered with one sentence"] += 1


@pytest.mark.slow
def test_new_finetune_with_a_damaged_parent_report(adapter_home, fault_stats):
    """A new run from the promoted adapter reads what that adapter learned from its run's report: a report that is
    a list is one sentence before anything trains."""
    from .faultlib import record_edit

    home = adapter_home
    record_edit(home)
    rd = runs.RunDir(home, "demo", RUN)
    rd.write_manifest({"command": "hand-made", "plan": ["sft"]})
    (rd.root / "report.json").write_text("[1]")
    adapters.set_promoted(home, "demo", RUN)
    code, out = cli(home, "finetune", "--method", "sft", "--no-machine-revisions", "--max-steps", "1")
    one_sentence(code, out, rd.root / "report.json")
    assert [p.name for p in home.runs_dir("demo").iterdir() if p.is_dir()] == [RUN]  # no new run folder
    fault_stats["damaged files answered with one sentence"] += 1
