"""A reward model no better than chance is not used (engine/reward/usable.py): best-of-n, RL and `engine score`
keep the one in use, and the report says why."""

from __future__ import annotations

import pytest

from engine.reward import usable

PREVIOUS = {"run_id": "20261201-000000-reward", "accuracy": 0.8, "n": 40}


def test_a_coin_flip_on_eight_pairs_is_not_used_and_the_previous_one_stays():
    verdict = usable.decide({"accuracy": 0.5, "n": 8, "on": "held_out"}, PREVIOUS)
    assert not verdict.used
    assert "not better than chance" in verdict.reason and "20261201-000000-reward stays in use" in verdict.reason
    assert not usable.decide({"accuracy": 0.5, "n": 8, "on": "held_out"}, None).used


def test_evidence_decides_with_enough_pairs():
    assert usable.decide({"accuracy": 22 / 32, "n": 32, "on": "held_out"}, None).used  # p = 0.025
    assert not usable.decide({"accuracy": 20 / 32, "n": 32, "on": "held_out"}, None).used  # p = 0.11
    assert usable.decide({"accuracy": 0.9, "n": 40, "on": "held_out"}, PREVIOUS).used
    worse = usable.decide({"accuracy": 0.7, "n": 40, "on": "held_out"}, PREVIOUS)
    assert not worse.used and "below the reward model in use" in worse.reason


def test_too_few_pairs_to_tell_are_said_so_and_used_only_when_nothing_else_is():
    few = usable.decide({"accuracy": 1.0, "n": 4, "on": "held_out"}, None)
    assert few.used and "too few to tell it from chance" in few.reason
    assert not usable.decide({"accuracy": 1.0, "n": 4, "on": "held_out"}, PREVIOUS).used
    assert not usable.decide({"accuracy": 0.5, "n": 4, "on": "held_out"}, None).used
    assert usable.decide({"accuracy": 1.0, "n": 12, "on": "train"}, None).used
    assert not usable.decide({"accuracy": 1.0, "n": 12, "on": "train"}, PREVIOUS).used


def test_the_p_value_is_the_binomial_tail():
    assert usable.chance_p_value(1.0, 5) == 1 / 32
    assert abs(usable.chance_p_value(0.5, 2) - 0.75) < 1e-12


@pytest.mark.slow
def test_a_second_reward_run_that_learned_nothing_leaves_the_first_in_use(home, demo_model_dir):
    import json
    import shutil

    from engine.feedback import FeedbackLog
    from engine.reward.score import newest_reward_run
    from tests.reward.conftest import install_demo, run_engine
    from tests.reward.synthetic import write_picks

    install_demo(home, demo_model_dir)
    write_picks(FeedbackLog(home, "demo"), 40, seed=1)
    first = run_engine("reward", "--profile", "demo", "--home", str(home.root), "--epochs", "5")
    assert first.code == 0, first.out + first.err
    (first_id,) = [p.name for p in home.runs_dir("demo").iterdir() if p.name.endswith("-reward")]
    assert json.loads((home.run_dir("demo", first_id) / "report.json").read_text())["used"] is True
    # one step at a tiny rate: the head stays untrained, a coin on the held-out pairs
    second = run_engine("reward", "--profile", "demo", "--home", str(home.root), "--max-steps", "1",
                        "--learning-rate", "1e-9")
    assert second.code == 0, second.out + second.err
    second_id = max(p.name for p in home.runs_dir("demo").iterdir() if p.name.endswith("-reward"))
    report = json.loads((home.run_dir("demo", second_id) / "report.json").read_text())
    assert report["used"] is False and f"{first_id} stays in use" in report["reason"]
    assert "not used:" in second.out
    assert newest_reward_run(home, "demo") == first_id
    # a run killed after its model and calibration were saved, before its verdict (report.json): never used
    killed = home.run_dir("demo", "29991231-235959-reward")
    shutil.copytree(home.run_dir("demo", first_id), killed)
    (killed / "report.json").unlink()
    assert newest_reward_run(home, "demo") == first_id
