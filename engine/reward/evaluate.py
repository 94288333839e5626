"""`engine eval`: does an adapter write replies the reward model prefers over base (or the promoted one)?

Both sides answer the same held-out prompts with the same seed per prompt; the reward model scores
each pair; the win rate (ties count half) comes with a 95% Wilson interval, so 12 prompts and
1,000 prompts do not look equally convincing. The finetune gate's own metrics (preference accuracy
from implicit rewards, log-prob of liked replies) are shown beside it on the same held-out slice.
``reward_win_rate`` is the reusable piece (the finetune gate may call it when
``train.gate_uses_reward`` is set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from engine.errors import UserError
from engine.home import Home

Messages = list[dict]
EVAL_SEED = 1000
"""Prompt i is answered with seed EVAL_SEED + i on both sides: reruns give the same replies."""


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a proportion (sane at 0%, 100% and small n)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


@dataclass
class WinRate:
    n: int
    wins: int
    ties: int
    losses: int
    rate: float
    low: float
    high: float
    samples: list[dict] = field(default_factory=list)
    """Per prompt: prompt, reply_a, reply_b, score_a, score_b, seed."""

    def to_json(self, with_samples: bool = False) -> dict:
        out = {"n": self.n, "wins": self.wins, "ties": self.ties, "losses": self.losses, "win_rate": self.rate,
               "ci95": [self.low, self.high]}
        if with_samples:
            out["samples"] = self.samples
        return out


def split_system(messages: Messages) -> tuple[str | None, Messages]:
    system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    return system, [m for m in messages if m.get("role") != "system"]


def reward_win_rate(lm, scorer, prompts: list[Messages], adapter: str | None, against: str | None,
                    params=None, seed: int = EVAL_SEED, log: Callable[[str], None] | None = None) -> WinRate:
    """Win rate of ``adapter`` over ``against`` (run ids loaded in ``lm``; None = base) by reward score.

    ``params`` are engine.runtime.GenerationParams (default: the runtime's); each prompt i is answered
    with seed ``seed + i`` by both sides.
    """
    from engine.reward.best_of import scoring_prompt
    from engine.runtime import GenerationParams

    params = params or GenerationParams()
    previous = getattr(lm, "adapter", None)
    replies: dict[str | None, list[tuple[str, dict]]] = {}
    try:
        for side in (adapter, against):
            if side in replies:
                continue
            lm.use_adapter(side)
            out = []
            for i, prompt in enumerate(prompts):
                system, turns = split_system(prompt)
                gen = lm.stream(turns, params=params.replace(seed=seed + i), system_prompt=system)
                out.append(("".join(gen), dict(gen.record or {})))
            replies[side] = out
            if log:
                log(f"  generated {len(out)} replies with {side or 'base'}")
    finally:
        lm.use_adapter(previous)
    a, b = replies[adapter], replies[against]
    items = [(scoring_prompt(p, rec), text) for p, (text, rec) in zip(prompts, a)]
    items += [(scoring_prompt(p, rec), text) for p, (text, rec) in zip(prompts, b)]
    scores = scorer.score_many(items)
    sa, sb = scores[:len(prompts)], scores[len(prompts):]
    wins = sum(1 for x, y in zip(sa, sb) if x > y)
    ties = sum(1 for x, y in zip(sa, sb) if x == y)
    n = len(prompts)
    rate = (wins + 0.5 * ties) / n if n else float("nan")
    low, high = wilson_interval(wins + 0.5 * ties, n)
    samples = [{"prompt": p, "reply_a": ta, "reply_b": tb, "score_a": x, "score_b": y, "seed": seed + i}
               for i, (p, (ta, _), (tb, _), x, y) in enumerate(zip(prompts, a, b, sa, sb))]
    return WinRate(n, wins, ties, n - wins - ties, rate, low, high, samples)


# ------------------------------------------------------------------------------------------------
# which prompts, which rows


def _prompts_of(rows: dict[str, list[dict]]) -> list[Messages]:
    from engine.train.gate import distinct_prompts

    return distinct_prompts(rows.get("sft", []) + rows.get("pref", []) + rows.get("kto", []))


def held_out_rows(home: Home, profile, adapter_run: str | None, reward_run: str | None) -> tuple[dict, str]:
    """Held-out rows (TRL dicts by kind) and where they came from: the adapter run's frozen slice, else
    the reward run's, else a fresh split of the live log by conversation (the profile's seed)."""
    from engine.train import data as train_data

    for run_id in (adapter_run, reward_run):
        if run_id is None:
            continue
        data_dir = home.run_dir(profile.name, run_id) / "data"
        if (data_dir / "split.json").is_file():
            rows = {k: train_data.read_rows(data_dir, k, "eval") for k in train_data.KINDS
                    if (data_dir / f"{k}.eval.jsonl").is_file()}
            if any(rows.values()):
                return rows, f"held-out slice of run {run_id}"
    snap = train_data.collect(home, profile.name)
    split = train_data.split_conversations(snap.rows.conversations(), profile.train.eval_fraction,
                                           profile.train.seed)
    held = set(split.eval_conversations)
    rows = {k: [r.data for r in snap.rows.of(k) if split.eval_on_train or r.conversation_id in held]
            for k in train_data.KINDS}
    return rows, "the feedback log (" + split.note + ")"


def gate_metrics(home: Home, profile, adapter_run: str, against_run: str | None, rows: dict) -> dict | None:
    """The finetune gate's metrics for both sides on ``rows`` (engine.train.gate), or None when there
    are no rows it can use."""
    from engine.train import gate
    from engine.train import model as train_model

    eval_rows = gate.EvalRows(sft=rows.get("sft", []), pref=rows.get("pref", []), kto=rows.get("kto", []))
    if not (eval_rows.sft or eval_rows.pref or eval_rows.kto):
        return None
    from engine.adapters import adapter_path

    against = adapter_path(home, profile.name, against_run) if against_run is not None else None
    peft_model, tokenizer, has_current = train_model.load_pair(profile, home, adapter_path(home, profile.name,
                                                                                            adapter_run), against)
    variants = {"new": "new", "current": "current" if has_current else None}
    from engine.train.methods import METHODS

    methods = [m.name for m in METHODS.values() if not m.reward and rows.get(str(m.rows))]  # each row's own kind
    result = gate.evaluate(peft_model, tokenizer, eval_rows, variants, profile.train.beta, methods,
                           profile.train.max_length)
    del peft_model
    return result


def evaluate_adapter(home: Home, profile_name: str, adapter: str | None = None, against: str = "base",
                     n_prompts: int = 16, reward_run: str | None = None, max_new_tokens: int | None = None,
                     with_gate: bool = True, log: Callable[[str], None] = print) -> dict:
    """What `engine eval` prints: reward win rate with its interval, and the gate's metrics."""
    from engine import adapters as pointer
    from engine.profiles import load_profile
    from engine.reward.score import RewardScorer
    from engine.runtime import GenerationParams, load_model

    profile = load_profile(profile_name, home)
    if against not in ("base", "promoted"):
        raise UserError(f"--against must be base or promoted, not {against!r}.")
    if n_prompts < 1:
        raise UserError(f"--n-prompts must be at least 1, not {n_prompts}.")
    params = GenerationParams.from_profile(profile, max_new_tokens=max_new_tokens)  # a bad flag fails first
    finished = pointer.run_ids(home, profile.name)
    if adapter is None:
        if not finished:
            raise UserError(f"profile {profile.name!r} has no finished adapter to evaluate; "
                            f"train one with `engine finetune --profile {profile.name}`.")
        adapter = finished[-1]
    elif adapter not in finished:
        raise UserError(f"run {adapter!r} of profile {profile.name!r} has no finished adapter "
                        f"(finished: {', '.join(finished) or 'none'}).")
    against_run = pointer.promoted_run(home, profile.name) if against == "promoted" else None
    scorer = RewardScorer.load(home, profile.name, reward_run)
    rows, source = held_out_rows(home, profile, adapter, scorer.run_id)
    prompts = _prompts_of(rows)[:n_prompts]
    if not prompts:
        raise UserError(f"no held-out prompts for profile {profile.name!r}; record a few more conversations "
                        "(at least two) so some can be held out.")
    log(f"eval: adapter {adapter} vs {against_run or 'base'} on {len(prompts)} prompts from {source}; "
        f"reward model {scorer.run_id}")
    gate_result = gate_metrics(home, profile, adapter, against_run, rows) if with_gate else None

    lm = load_model(profile, home, adapter=None)
    lm.load_adapter(adapter, pointer.adapter_path(home, profile.name, adapter))
    if against_run is not None and against_run != adapter:
        lm.load_adapter(against_run, pointer.adapter_path(home, profile.name, against_run))
    win = reward_win_rate(lm, scorer, prompts, adapter, against_run, params, log=log)
    other = against_run or "base"
    lines = [
        f"adapter {adapter} vs {other}: reward win rate {win.rate:.1%} "
        f"(95% CI {win.low:.1%} to {win.high:.1%}; {win.wins} wins, {win.ties} ties, {win.losses} losses "
        f"over {win.n} prompts)",
    ]
    if gate_result:
        lines.append("  gate metrics on the same held-out slice (new vs " + other + "):")
        for metric in sorted(gate_result["new"]):
            cur = gate_result["current"].get(metric)
            lines.append(f"    {metric:<15} {gate_result['new'][metric]:+.4f}   vs   "
                         + (f"{cur:+.4f}" if cur is not None else "-"))
    verdict = "better than" if win.low > 0.5 else "worse than" if win.high < 0.5 else "not clearly different from"
    lines.append(f"  by the reward model, {adapter} is {verdict} {other}.")
    return {"adapter": adapter, "against": other, "reward_run": scorer.run_id, "prompts_from": source,
            **win.to_json(with_samples=True), "gate": gate_result, "lines": lines}
