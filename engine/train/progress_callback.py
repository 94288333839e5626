"""Training progress for a person watching: a rich progress bar on a terminal, plain log lines otherwise.

Shows step / total, loss, tokens per second, ETA and elapsed time against the budget. Plain lines are
throttled (one every few seconds, plus the first and the last) so an overnight log stays readable.
Only rank 0 shows anything. Imports transformers and rich at the top: import this module lazily.
"""

from __future__ import annotations

import sys
import time

from transformers import TrainerCallback

from engine import runs

RL_SHOWN = (("reward", "reward"), ("kl", "KL"), ("completions/mean_length", "reply len"))
"""What an RL stage's progress line shows beside the loss: TRL's log key and its label."""


def _fmt_secs(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "?"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ProgressCallback(TrainerCallback):
    def __init__(self, stage: str, deadline: runs.Deadline | None = None, stream=None, tty: bool | None = None,
                 plain_every: float = 5.0) -> None:
        self.stage = stage
        self.deadline = deadline
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.plain_every = plain_every
        self._last_plain = 0.0
        self._start = time.monotonic()
        self._first_step: int | None = None
        self._tokens0 = 0
        self._loss: float | None = None
        self._rl: dict[str, float] = {}
        """An RL stage's last logged reward, KL and mean reply length (TRL's names)."""
        self._progress = None
        self._task = None
        self._printed_step: int | None = None
        """The step of the last plain line: a step is printed once, with its own loss."""
        self.active = runs.is_main_process()

    def _line(self, state) -> str:
        elapsed = time.monotonic() - self._start
        run_elapsed = ""
        if self.deadline and self.deadline.at is not None:  # the budget covers the run: say its elapsed time too
            run_elapsed = f", run {_fmt_secs(time.time() - self.deadline.started)}"
        done = state.global_step - (self._first_step or 0)
        total = state.max_steps or 0
        eta = (elapsed / done) * (total - state.global_step) if done > 0 and total else None
        tokens = (getattr(state, "num_input_tokens_seen", 0) or 0) - self._tokens0
        tps = tokens / elapsed if elapsed > 0 else 0.0
        loss = f"{self._loss:.4f}" if self._loss is not None else "-"
        budget = ""
        if self.deadline and self.deadline.at is not None:
            budget = f" / budget {_fmt_secs(self.deadline.total)} (left {_fmt_secs(self.deadline.remaining())})"
        rl = ""
        if self._rl:
            rl = "  ".join(f"{label} {self._rl[key]:.3g}" for key, label in RL_SHOWN if key in self._rl) + "  "
        return (f"[{self.stage}] step {state.global_step}/{total}  loss {loss}  {rl}{tps:,.0f} tok/s  "
                f"ETA {_fmt_secs(eta)}  stage elapsed {_fmt_secs(elapsed)}{run_elapsed}{budget}")

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.monotonic()
        self._first_step = state.global_step
        self._tokens0 = getattr(state, "num_input_tokens_seen", 0) or 0
        if self.active and self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(TextColumn("[bold]{task.fields[stage]}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), console=Console(file=self.stream),
                                      transient=False)
            self._progress.start()
            self._task = self._progress.add_task("train", total=state.max_steps or None,
                                                 completed=state.global_step, stage=self.stage, info="")
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
        for key, _ in RL_SHOWN:
            if logs and isinstance(logs.get(key), (int, float)):
                self._rl[key] = float(logs[key])
        return self._show(state)

    def on_step_end(self, args, state, control, **kwargs):
        # the step's loss is logged after this: a plain line waits for it (on_log), the bar just moves
        return self._show(state) if self._progress is not None else None

    def _show(self, state, force: bool = False):
        if not self.active:
            return None
        if self._progress is not None:
            info = self._line(state).split("  ", 1)[1]
            self._progress.update(self._task, completed=state.global_step, info=info)
        elif self._printed_step != state.global_step:
            now = time.monotonic()
            if force or now - self._last_plain >= self.plain_every:
                self._last_plain = now
                self._printed_step = state.global_step
                print(self._line(state), file=self.stream, flush=True)
        return None

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.active:
            self._show(state, force=True)  # the last step, unless its line is out already
        return control
