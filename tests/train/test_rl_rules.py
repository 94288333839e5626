"""RL's rules that need no model: which prompts it trains on, when `auto` may choose it, how its gate reads
the replies, and the one sentence when there is no reward model."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.feedback.replay import replay
from engine.profiles import RlSettings
from engine.train import plan, rl_gate
from tests.train.conftest import converse, run_engine


def test_prompt_rows_are_every_question_once_judged_or_not(log):
    _, (a, b) = converse(log, "What is 2 + 2?", ["4", "four"])  # two regenerations: one prompt
    converse(log, "Name a colour.", ["Blue."])  # never judged: still a prompt RL can practise on
    log.rate(a["id"], +1)
    from engine.feedback import rows as feedback_rows

    prompts = [r.data["prompt"] for r in feedback_rows.prompt_rows(replay(log.snapshot().result))]
    questions = sorted(p[-1]["content"] for p in prompts)
    assert questions == ["Name a colour.", "What is 2 + 2?"]
    assert all(p[0]["role"] == "system" for p in prompts)


@pytest.mark.slow
def test_rl_without_a_reward_model_is_one_sentence(log, demo_home):
    converse(log, "What is 2 + 2?", ["4"])
    code, out = run_engine("finetune", "--profile", "demo", "--method", "rloo", "--home", str(demo_home.root))
    assert code == 2
    assert "has none: train one first with `engine reward --profile demo`" in out
    assert "Traceback" not in out and not list(demo_home.runs_dir("demo").glob("*rloo*"))


COUNTS = {"sft": 10, "pref": 10, "kto": 10, "kto_desirable": 5, "kto_undesirable": 5, "edits": 0, "prompt": 40}


def test_auto_adds_rl_only_when_allowed_and_the_reward_model_is_good_enough():
    good = plan.RewardModel("r1", 0.9)
    off = RlSettings()
    on = RlSettings(auto=True, min_reward_accuracy=0.8, min_prompts=20)
    assert plan.choose("auto", COUNTS, 1, off, good)[0] == ["sft", "dpo"]
    stages, why = plan.choose("auto", COUNTS, 1, on, good)
    assert stages == ["sft", "dpo", "rloo"] and "reward model r1 (held-out accuracy 90%" in why
    stages, why = plan.choose("auto", COUNTS, 1, on, plan.RewardModel("r2", 0.6))
    assert stages == ["sft", "dpo"] and "accuracy is 60%, below rl.min_reward_accuracy 80%" in why
    stages, why = plan.choose("auto", {**COUNTS, "prompt": 5}, 1, on, good)
    assert stages == ["sft", "dpo"] and "5 prompts, fewer than rl.min_prompts 20" in why
    assert "no finished reward model" in plan.choose("auto", COUNTS, 1, on, None)[1]


def test_rl_methods_need_prompts():
    assert plan.choose("grpo", COUNTS, 4)[0] == ["grpo"]
    with pytest.raises(UserError, match="rloo needs at least 4 prompts .* has 2: chat more first"):
        plan.choose("rloo", {**COUNTS, "prompt": 2}, 4)


def test_repeated_ngrams_are_counted_within_each_reply():
    assert rl_gate.repeated_ngram_share([[1, 2, 3, 4, 5, 6]]) == 0
    assert rl_gate.repeated_ngram_share([[1, 2, 3, 4] * 3]) == pytest.approx(5 / 9)  # 9 4-grams, 4 distinct
    assert rl_gate.repeated_ngram_share([[1, 2, 3, 4], [1, 2, 3, 4]]) == 0  # across replies is not repetition


def _measures(**changes) -> dict:
    base = {"reward_win_rate": 0.7, "length_ratio": 1.1, "repetition_increase": 0.0, "kl": 0.2}
    return {**base, **changes}


RL = RlSettings(gate_max_length_ratio=1.5, gate_max_repetition_increase=0.1, gate_max_kl=1.0)


@pytest.mark.parametrize("changes, words", [
    ({"length_ratio": 2.4}, "its held-out replies grew longer than the reference's (length_ratio 2.4, must be <= 1.5)"),
    ({"repetition_increase": 0.3}, "repeat themselves more than the reference's"),
    ({"kl": 3.0}, "drifted too far from the reference model (kl 3, must be <= 1)"),
    ({"reward_win_rate": 0.25}, "the reward model it trained against prefers the reference's held-out replies"),
])
def test_the_rl_gate_says_which_check_failed(changes, words):
    reason = rl_gate.refusal(rl_gate.checks(_measures(**changes), RL))
    assert reason is not None and words in reason and reason.endswith("not promoted.")


def test_the_rl_gate_passes_sound_replies():
    assert rl_gate.refusal(rl_gate.checks(_measures(), RL)) is None
