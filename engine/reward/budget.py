"""How the scoring around reward training fits the time budget.

``--time-budget`` bounds the whole ``engine reward`` command, not just its training loop: loading,
the untrained baseline, training, saving, the held-out evaluation and calibration. Scoring cost is
measured on a few held-out pairs first; from it the recipe decides how many held-out pairs to score
(before and after training, the same ones) and keeps time after training for that evaluation and for
calibration, by moving the training deadline earlier. Calibration always uses a bounded sample of
training replies (a mean and a std need a few hundred values, not thousands). What was cut is
recorded in report.json (``budget``) and printed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

CALIBRATION_SAMPLE = 256
"""At most this many training replies are scored for calibration (mean/std of raw scores)."""
SCORING_SHARE = 0.3
"""With a budget, scoring (baseline + trained evaluation + calibration) gets at most this share of the
time left after loading; training gets the rest."""
MIN_EVAL_PAIRS = 32
"""Even a tiny budget evaluates at least this many held-out pairs (when there are that many): fewer cannot tell a
reward model from chance (engine.reward.usable; 8 pairs let a 0.50 model be used)."""
PROBE_PAIRS = 4
"""Held-out pairs scored first, to measure the cost of scoring one sequence."""
SAFETY = 1.5
"""Scoring after training is planned at this multiple of the measured cost (caches, longer pairs)."""
SAVE_S = 2.0
"""Seconds kept for saving the trained model after training."""


@dataclass
class ScoringPlan:
    eval_pairs: int
    """Held-out pairs scored before and after training."""
    eval_total: int
    calibration: int
    """Training replies scored for calibration."""
    calibration_total: int
    reserve_s: float
    """Seconds kept after training for saving, the trained evaluation and calibration (0: no budget)."""
    seconds_per_sequence: float | None

    def cuts(self) -> list[str]:
        """What the plan left out, in words (empty: nothing)."""
        out = []
        if self.eval_pairs < self.eval_total:
            out.append(f"evaluated on {self.eval_pairs} of {self.eval_total} held-out pairs (time budget)")
        if self.calibration < self.calibration_total:
            out.append(f"calibrated on a sample of {self.calibration} of {self.calibration_total} training replies")
        return out

    def to_json(self) -> dict:
        return {**asdict(self), "cuts": self.cuts()}


def plan_scoring(remaining_s: float | None, seconds_per_sequence: float | None, eval_total: int,
                 calibration_total: int) -> ScoringPlan:
    """How many held-out pairs and calibration replies to score with ``remaining_s`` seconds left (None:
    no budget), and how long to keep after training for them."""
    calibration = min(CALIBRATION_SAMPLE, calibration_total)
    if remaining_s is None or not seconds_per_sequence:
        return ScoringPlan(eval_total, eval_total, calibration, calibration_total, 0.0, seconds_per_sequence)
    per = seconds_per_sequence * SAFETY
    scoring_s = max(0.0, remaining_s) * SCORING_SHARE
    # baseline and trained evaluation score 2 sequences per pair each; calibration 1 per reply
    affordable = int((scoring_s / per - calibration) // 4)
    eval_pairs = min(eval_total, max(affordable, MIN_EVAL_PAIRS))
    if affordable < 0:  # not even calibration fits: shrink it too (a std from fewer values is still a std)
        calibration = min(calibration, max(16, int(scoring_s / per) - 4 * eval_pairs))
    reserve = SAVE_S + per * (2 * eval_pairs + calibration)
    return ScoringPlan(eval_pairs, eval_total, calibration, calibration_total, reserve, seconds_per_sequence)


def sample(items: list, n: int, seed: int) -> list:
    """``n`` of ``items``, chosen with ``seed``, in their original order (all of them when n >= len)."""
    if n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]
