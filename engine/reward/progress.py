"""Plain progress lines for reward training (step, loss, pair accuracy, elapsed, ETA, budget left).

Reward runs are short next to finetunes, so one line every few seconds is enough on a TTY and in a
log file alike. Imports transformers at the top: import this module inside functions only.
"""

from __future__ import annotations

import time
from typing import Callable

from transformers import TrainerCallback

_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line unicode plot of ``values`` (resampled to at most ``width`` points)."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [values[int(i * step)] for i in range(width)]
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, int((v - lo) / span * (len(_BLOCKS) - 1) + 0.5))] for v in values)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLines(TrainerCallback):
    def __init__(self, log: Callable[[str], None], deadline=None, every_s: float = 5.0) -> None:
        self.log = log
        self.deadline = deadline
        self.every_s = every_s
        self.started = time.monotonic()
        self.last = 0.0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return control
        now = time.monotonic()
        last_step = state.global_step >= state.max_steps
        if now - self.last < self.every_s and not last_step and state.global_step > 1:
            return control
        self.last = now
        elapsed = now - self.started
        eta = elapsed / max(state.global_step, 1) * max(state.max_steps - state.global_step, 0)
        parts = [f"step {state.global_step}/{state.max_steps}", f"loss {float(logs['loss']):.4f}"]
        if "accuracy" in logs:
            parts.append(f"pair accuracy {float(logs['accuracy']):.2f}")
        parts.append(f"elapsed {_clock(elapsed)}, eta {_clock(eta)}")
        remaining = self.deadline.remaining() if self.deadline is not None else None
        if remaining is not None:
            parts.append(f"budget left {_clock(remaining)}")
        self.log("  " + ", ".join(parts))
        return control
