"""The TrainerCallback every tuneloop run installs: checkpoints you can trust, clean stops, metrics.jsonl.

Works with any ``transformers.Trainer`` subclass (TRL's SFT/DPO/KTO/Reward trainers). It

- asks for a checkpoint every ``save_minutes`` (the trainer's own ``save_steps`` covers every N steps);
- writes the ``COMPLETE`` marker into each checkpoint after the trainer saved it (all ranks finished);
- stops at the next step end when a signal arrived (saving a checkpoint first) or the deadline passed
  (the caller then saves the adapter and evaluates as usual) — all ranks stop at the same step;
- appends every log record to ``metrics.jsonl`` with the stage name and wall time: written through to the
  OS at once (a crash of the process loses nothing), fsync'd with each checkpoint and at the end (a fsync
  per step cost several percent of a small model's training time; a power cut loses at most the lines
  since the last checkpoint, which a resume re-trains and logs again anyway);
- skips the Trainer's extra checkpoint after the last step (the caller publishes the stage adapter right
  after training, so that checkpoint would only cost time); periodic ones and stop checkpoints stay.

This module imports transformers at the top; import it only inside functions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from transformers import TrainerCallback

from engine import runs


class RunCallback(TrainerCallback):
    def __init__(self, metrics_path: Path | None, stage: str, stop: runs.StopRequest | None = None,
                 deadline: runs.Deadline | None = None, save_minutes: float | None = None) -> None:
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.stage = stage
        self.stop = stop
        self.deadline = deadline
        self.save_seconds = save_minutes * 60 if save_minutes and save_minutes > 0 else None
        self.last_save = time.monotonic()
        self.stopped_by: str | None = None
        """None (ran to the end), ``"signal"`` or ``"budget"``."""
        self.signal_name: str | None = None
        self._metrics_fd: int | None = None

    # -- stopping and saving
    def on_step_end(self, args, state, control, **kwargs):
        signalled = runs.any_rank(bool(self.stop and self.stop.requested))
        expired = runs.any_rank(bool(self.deadline and self.deadline.expired()))
        if signalled:
            self.stopped_by = "signal"
            self.signal_name = (self.stop.signal_name if self.stop else None) or "signal"
            control.should_save = True
            control.should_training_stop = True
        elif expired:
            self.stopped_by = "budget"
            control.should_save = True
            control.should_training_stop = True
        elif self.save_seconds is not None and runs.any_rank(time.monotonic() - self.last_save >= self.save_seconds):
            control.should_save = True
        elif control.should_save and state.global_step >= state.max_steps > 0 and not (
                state.save_steps and state.save_steps > 0 and state.global_step % state.save_steps == 0):
            # transformers adds a save after the last step; the stage adapter is published right after train()
            control.should_save = False
        return control

    def on_save(self, args, state, control, **kwargs):
        self.last_save = time.monotonic()
        self._sync_metrics()
        runs.barrier()  # every rank has written its part (rng state) before the marker says "complete"
        if runs.is_main_process():
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                runs.mark_complete(ckpt, {"step": state.global_step, "stage": self.stage})
        runs.barrier()
        return control

    # -- metrics
    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.metrics_path is None or not logs or not runs.is_main_process():
            return control
        record = {"stage": self.stage, "step": state.global_step, "epoch": state.epoch, "ts": time.time()}
        record.update({k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool))})
        if self._metrics_fd is None:
            self._metrics_fd = runs.open_append(self.metrics_path)  # from the home, no link followed
        os.write(self._metrics_fd, runs.jsonl_line(record))
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.close()
        return control

    def _sync_metrics(self) -> None:
        if self._metrics_fd is not None:
            os.fsync(self._metrics_fd)

    def close(self) -> None:
        """fsync and close metrics.jsonl (idempotent; the next record reopens it)."""
        if self._metrics_fd is not None:
            fd, self._metrics_fd = self._metrics_fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass
