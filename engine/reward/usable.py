"""Whether a finished reward model is used: best-of-n, RL and ``engine score`` take the newest reward run that is.

A reward model trained under a tight budget was saved with 0.50 accuracy on the 8 held-out pairs it had time to
score, and best-of-n and RL then followed it: a coin with a model's authority. So a new reward model is used only
when its held-out accuracy is better than chance with evidence (a one-sided binomial test at ``ALPHA``: with 32
pairs that is 22 right or more) and not below the reward model in use by more than ``TOLERANCE``; otherwise the
one in use stays and the report says why. With fewer than 5 held-out pairs not even a perfect score is evidence,
and a model whose pairs were all trained on cannot be checked at all: such a model is used only when there is no
other and it ranked more than half of its held-out pairs right. Runs from before this rule have no verdict and count as used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
TOLERANCE = 0.05


@dataclass(frozen=True)
class Verdict:
    used: bool
    reason: str
    p_value: float | None


def chance_p_value(accuracy: float, n: int) -> float:
    """P(at least as many right by coin flips): ties counted half, rounded down to whole pairs."""
    k = math.floor(accuracy * n + 1e-9)
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def decide(ev: dict, previous: dict | None) -> Verdict:
    """``ev``: this run's eval (accuracy, n, on); ``previous``: the reward run in use ({run_id, accuracy, n}) or
    None."""
    acc, n = ev.get("accuracy"), int(ev.get("n") or 0)
    if ev.get("on") != "held_out" or not n or acc is None or acc != acc:
        if previous is None:
            return Verdict(True, "used, unchecked: no pair could be held out to test it (give more pairs)", None)
        return Verdict(False, f"not used: no pair could be held out to test it; reward model {previous['run_id']} "
                              "stays in use", None)
    p = chance_p_value(acc, n)
    if chance_p_value(1.0, n) > ALPHA:  # even all right would not tell it from chance
        if acc <= 0.5 or previous is not None:
            stays = f"reward model {previous['run_id']} stays in use" if previous else "no reward model is used"
            return Verdict(False, f"not used: {n} held-out pairs are too few to tell it from chance ({acc:.0%} "
                                  f"right); {stays}", p)
        return Verdict(True, f"used, barely tested: {acc:.0%} on {n} held-out pairs, too few to tell it from chance "
                             "(give more pairs)", p)
    if p > ALPHA:
        stays = f"reward model {previous['run_id']} stays in use" if previous else "no reward model is used"
        return Verdict(False, f"not used: {acc:.0%} on {n} held-out pairs is not better than chance (p = {p:.2f}); "
                              f"{stays} (more pairs or a longer --time-budget give it a fair test)", p)
    if previous is not None and previous.get("accuracy") is not None and acc < previous["accuracy"] - TOLERANCE:
        return Verdict(False, f"not used: {acc:.0%} on {n} held-out pairs is below the reward model in use "
                              f"({previous['run_id']}: {previous['accuracy']:.0%}); it stays in use", p)
    return Verdict(True, f"used: {acc:.0%} on {n} held-out pairs, better than chance (p = {p:.3f})", p)
