"""Best-of-n: sample n replies, score each with the reward model, return them best first.

Used when a profile's ``generation.best_of`` > 1 and a finished reward run exists. The TUI calls
``best_of_for_profile`` from its worker thread and shows the candidates as siblings, each with its
``generation["reward_score"]``; ``engine generate --best-of N`` calls ``best_of_n`` directly.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Callable

from engine.home import Home

Messages = list[dict]


@dataclass
class Candidate:
    """One sampled reply. ``record`` is the runtime's generation record plus ``reward_score`` (raw),
    ``reward_calibrated`` (z-score against the reward model's training replies) and ``reward_run``."""

    text: str
    record: dict
    seed: int
    score: float
    calibrated: float


def scoring_prompt(messages: Messages, record: dict) -> Messages:
    """The prompt as the reward model saw it in training: the reply's system prompt, then the turns."""
    turns = [m for m in messages if m.get("role") != "system"]
    system = record.get("system_prompt")
    if system is None:
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    return ([{"role": "system", "content": system}] if system else []) + turns


def sampling_params(params, n: int):
    """n > 1 needs sampling (greedy would give n identical replies): turn it on (temperature 0 -> 1)."""
    if n > 1 and params.greedy:
        params = params.replace(do_sample=True, temperature=params.temperature or 1.0)
    return params


def best_of_n(lm, scorer, messages: Messages, n: int, params=None, system_prompt: str | None = None,
              on_candidate: Callable[[int, str], None] | None = None,
              cancelled: Callable[[], bool] | None = None) -> list[Candidate]:
    """Generate ``n`` replies to ``messages`` with seeds ``seed, seed+1, ...`` and return them sorted by
    reward score, best first. ``params`` (engine.runtime.GenerationParams) default to the runtime's;
    its seed, if set, makes the whole set reproducible. ``on_candidate(i, text)`` is called as each
    reply finishes; ``cancelled()`` returning True stops early (the finished candidates are returned).
    """
    from engine.runtime import GenerationParams

    if n < 1:
        raise ValueError("n must be at least 1")
    if params is None:
        profile = getattr(lm, "profile", None)
        params = GenerationParams.from_profile(profile) if profile is not None else GenerationParams()
    params = sampling_params(params, n)
    first = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31 - n)
    texts: list[tuple[str, dict, int]] = []
    for i in range(n):
        if cancelled is not None and cancelled():
            break
        seed = first + i
        gen = lm.stream(messages, params=params.replace(seed=seed), system_prompt=system_prompt)
        text = "".join(gen)
        record = dict(gen.record or {})
        record.setdefault("seed", seed)
        texts.append((text, record, seed))
        if on_candidate is not None:
            on_candidate(i, text)
    if not texts:
        return []
    raw = scorer.score_many([(scoring_prompt(messages, rec), text) for text, rec, _ in texts])
    out = []
    for (text, record, seed), score in zip(texts, raw):
        z = scorer.calibrate(score)
        record.update(reward_score=score, reward_calibrated=z, reward_run=scorer.run_id, best_of=n)
        out.append(Candidate(text=text, record=record, seed=seed, score=score, calibrated=z))
    out.sort(key=lambda c: c.score, reverse=True)
    return out


_cache: dict[tuple[str, str], Any] = {}
_cache_lock = threading.Lock()


def load_scorer(home: Home, profile: str):
    """The newest finished reward run's scorer for ``profile`` (cached; reloaded when a newer run
    finishes), or None when the profile has no reward model."""
    from engine.reward.score import RewardScorer, newest_reward_run

    run_id = newest_reward_run(home, profile)
    if run_id is None:
        return None
    key = (str(home.root), profile)
    with _cache_lock:
        scorer = _cache.get(key)
        if scorer is None or scorer.run_id != run_id:
            scorer = RewardScorer.load(home, profile, run_id)
            _cache[key] = scorer
        return scorer


def best_of_for_profile(lm, home: Home, profile, messages: Messages, n: int | None = None, params=None,
                        system_prompt: str | None = None, **kwargs) -> list[Candidate] | None:
    """Best-of-n for the TUI: n defaults to ``profile.generation.best_of``. Returns None (generate one
    reply as usual) when n <= 1 or the profile has no finished reward model."""
    n = profile.generation.best_of if n is None else n
    if n <= 1:
        return None
    scorer = load_scorer(home, profile.name)
    if scorer is None:
        return None
    if params is None:
        from engine.runtime import GenerationParams

        params = GenerationParams.from_profile(profile)
    return best_of_n(lm, scorer, messages, n, params, system_prompt=system_prompt, **kwargs)
