"""Reward runs next to adapters: `engine adapters` lists them with their held-out numbers, and the
finetune gate with `train.gate_uses_reward` asks the newest reward model before promoting."""

from __future__ import annotations

import json
import shutil

import pytest

from engine import adapters
from engine.home import Home
from engine.profiles import BUILTIN_DIR
from engine.safe_files import ensure_dir
from tests.reward.conftest import run_engine


def reward_rows(out: str) -> dict[str, list[str]]:
    """The rows of the "reward models" table, by run id (cells split on whitespace, marker dropped)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("reward models"))
    rows = {}
    for line in lines[start + 2:]:
        if line.startswith("reward model in use"):
            break
        cells = line.lstrip("* ").split()
        rows[cells[0]] = cells
    return rows


@pytest.mark.slow
def test_engine_adapters_lists_reward_runs_with_their_accuracy(trained_reward):
    res = run_engine("adapters", "--profile", "demo", "--home", str(trained_reward.home.root))
    assert res.code == 0, res.out + res.err
    ev = trained_reward.report["eval"]
    header = next(line for line in res.out.splitlines() if "baseline_acc" in line).split()
    row = reward_rows(res.out)[trained_reward.run_id]
    cells = dict(zip(header, row))
    assert cells["status"] == "finished" and cells["accuracy"] == f"{ev['accuracy']:.3f}"
    assert cells["margin"] == f"{ev['margin']:.3f}" and cells["baseline_acc"] == f"{ev['baseline_accuracy']:.3f}"
    assert f"reward model in use: {trained_reward.run_id}" in res.out
    # the reward run is not offered as an adapter: the adapters table above holds only base
    adapter_lines = res.out.split("in use:")[0].splitlines()[1:]
    assert [line.split()[-1] for line in adapter_lines] == ["-"] and "base" in adapter_lines[0]


def test_engine_adapters_without_reward_runs_prints_no_reward_table(demo_home):
    res = run_engine("adapters", "--profile", "demo", "--home", str(demo_home.root))
    assert res.code == 0 and "reward model" not in res.out and res.out.splitlines()[-1].startswith("in use:")


@pytest.mark.slow
def test_gate_uses_reward_asks_the_reward_model_before_promoting(trained_reward, tmp_path):
    """A copy of the trained home; the metric gate made lenient (margin 100) so the reward check is what
    decides. Whatever the win rate, the report and the promotion must agree with it."""
    home = Home.resolve(tmp_path / "home")
    shutil.copytree(trained_reward.home.root, home.root)
    text = (BUILTIN_DIR / "demo.toml").read_text()
    text = text.replace("[train]\n", "[train]\ngate_uses_reward = true\ngate_margin = 100.0\ngate_accuracy_margin = 1.0\n")
    text = text.replace("max_new_tokens = 64", "max_new_tokens = 8")
    ensure_dir(home.profiles_dir)
    (home.profiles_dir / "demo.toml").write_text(text)
    res = run_engine("finetune", "--profile", "demo", "--method", "sft", "--from", "base", "--max-steps", "2",
                     "--home", str(home.root))
    assert res.code == 0, res.out + res.err
    (run_id,) = [r for r in adapters.run_ids(home, "demo")]
    report = json.loads((home.run_dir("demo", run_id) / "report.json").read_text())
    check = report["gate"]["reward"]
    assert check["reward_run"] == trained_reward.run_id and 1 <= check["n"] <= 16
    assert 0.0 <= check["win_rate"] <= 1.0
    assert "reward check: new adapter's replies win" in res.out
    if check["win_rate"] >= 0.5:
        assert report["promoted"] and "reward model's win rate is" in report["reason"]
        assert adapters.promoted_run(home, "demo") == run_id
    else:
        assert not report["promoted"] and "the reward model prefers the current adapter" in report["reason"]
        assert adapters.promoted_run(home, "demo") is None
    listing = run_engine("adapters", "--profile", "demo", "--home", str(home.root))
    assert run_id in listing.out and trained_reward.run_id in reward_rows(listing.out)
