"""Best-of-n on the demo model with the trained reward model: candidates come back best first."""

from __future__ import annotations

import pytest

from engine.profiles import load_profile
from engine.reward.best_of import best_of_for_profile, best_of_n, load_scorer


@pytest.fixture(scope="module")
def lm_and_scorer(trained_reward):
    from engine.runtime import load_model

    profile = load_profile("demo", trained_reward.home)
    return load_model(profile, trained_reward.home), load_scorer(trained_reward.home, "demo"), profile


@pytest.mark.slow
def test_best_of_n_returns_n_scored_candidates_sorted_by_score(lm_and_scorer):
    from engine.runtime import GenerationParams

    lm, scorer, profile = lm_and_scorer
    messages = [{"role": "user", "content": "What is 3 + 4?"}]
    params = GenerationParams.from_profile(profile, max_new_tokens=12, seed=7)
    cands = best_of_n(lm, scorer, messages, 4, params)
    assert len(cands) == 4
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    assert sorted(c.seed for c in cands) == [7, 8, 9, 10]
    assert len({c.text for c in cands}) > 1  # greedy demo profile: best-of-n samples anyway
    for c in cands:
        assert c.record["reward_score"] == c.score and c.record["reward_run"] == scorer.run_id
        assert c.record["seed"] == c.seed and c.record["params"]["do_sample"] is True
        # the score is the reward model's own judgement of that text after that prompt
        prompt = [{"role": "system", "content": profile.system_prompt}, *messages]
        assert scorer.score(prompt, c.text) == pytest.approx(c.score, abs=1e-4)
        assert c.calibrated == pytest.approx(scorer.calibrate(c.score))
    # the same seed gives the same candidates
    again = best_of_n(lm, scorer, messages, 4, params)
    assert [(c.seed, c.text) for c in again] == [(c.seed, c.text) for c in cands]


@pytest.mark.slow
def test_best_of_for_profile_needs_n_above_one_and_a_reward_model(lm_and_scorer, trained_reward, home):
    lm, _scorer, profile = lm_and_scorer
    messages = [{"role": "user", "content": "Tell me one fact about rain."}]
    assert best_of_for_profile(lm, trained_reward.home, profile, messages) is None  # demo: best_of = 1
    from engine.runtime import GenerationParams

    params = GenerationParams.from_profile(profile, max_new_tokens=8)
    cands = best_of_for_profile(lm, trained_reward.home, profile, messages, n=3, params=params)
    assert [c.score for c in cands] == sorted((c.score for c in cands), reverse=True) and len(cands) == 3
    assert best_of_for_profile(lm, home, profile, messages, n=3, params=params) is None  # no reward run there
