"""`engine eval`: an adapter trained toward what the reward model prefers wins against base.

The loop as a user runs it: the demo model answers each question (nonsense: random weights), the
user regenerates and picks a real answer over it; `engine reward` learns that preference;
`engine finetune --method sft` (helper D's command) trains an adapter on the picked answers;
`engine eval` has both answer held-out questions and lets the reward model judge.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest

from engine.reward.evaluate import wilson_interval
from tests.reward.conftest import install_demo, run_engine
from tests.reward.synthetic import question_and_answer


def test_wilson_interval_matches_known_values():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == pytest.approx(1.0)
    assert wilson_interval(50, 100)[0] < 0.5 < wilson_interval(50, 100)[1]


def _record_regenerate_and_pick(home, n: int, seed: int) -> None:
    from engine.feedback import FeedbackLog
    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_model

    profile = load_profile("demo", home)
    lm = load_model(profile, home)
    params = GenerationParams.from_profile(profile, max_new_tokens=16)
    log = FeedbackLog(home, "demo")
    rng = random.Random(seed)
    for _ in range(n):
        conv = uuid.UUID(int=rng.getrandbits(128)).hex  # seeded: the held-out split is reproducible
        question, answer = question_and_answer(rng)
        user = log.add_message(conv, None, "user", question)
        text, record = lm.generate([{"role": "user", "content": question}], params)
        first = log.add_message(conv, user["id"], "assistant", text, generation=record)
        better = log.add_message(conv, user["id"], "assistant", answer, generation={**record, "seed": 1})
        log.choose(better["id"], [first["id"], better["id"]], "regenerate")


@pytest.mark.slow
def test_eval_adapter_trained_toward_the_reward_model_beats_base(home, demo_model_dir):
    install_demo(home, demo_model_dir)
    _record_regenerate_and_pick(home, 30, seed=11)
    h = str(home.root)
    res = run_engine("reward", "--profile", "demo", "--home", h, "--epochs", "4")
    assert res.code == 0, res.out + res.err
    res = run_engine("finetune", "--profile", "demo", "--home", h, "--method", "sft", "--from", "base",
                     "--max-steps", "40")
    assert res.code == 0, res.out + res.err
    res = run_engine("eval", "--profile", "demo", "--home", h, "--against", "base", "--n-prompts", "6",
                     "--max-new-tokens", "12", "--json")
    assert res.code == 0, res.out + res.err
    result = json.loads(res.out)
    assert result["against"] == "base" and 3 <= result["n"] <= 6  # distinct held-out prompts, at most 6
    assert result["win_rate"] > 0.5
    low, high = result["ci95"]
    assert low <= result["win_rate"] <= high and 0 < high - low < 1
    assert result["prompts_from"].startswith("held-out slice of run")
    assert {"liked_logprob"} <= set(result["gate"]["new"])
    # the adapter's replies, not base's, are the ones that read like answers
    sample = result["samples"][0]
    assert sample["reply_a"] != sample["reply_b"] and sample["score_a"] > sample["score_b"]

    res = run_engine("eval", "--profile", "demo", "--home", h, "--n-prompts", "2", "--max-new-tokens", "8")
    assert res.code == 0, res.err
    assert "reward win rate" in res.out and "95% CI" in res.out and "liked_logprob" in res.out
