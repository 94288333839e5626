"""``engine`` with a checkpoint write that never finishes: for the kill-mid-checkpoint test.

Usage: python slow_checkpoint.py ENGINE-ARGS...   (env: SLOW_STEP, FLAG_FILE)

When the trainer has written ``checkpoint-N`` (N >= SLOW_STEP) and is about to declare it complete,
this cuts its adapter weights file in half (what an interrupted write leaves), writes FLAG_FILE and
hangs before the COMPLETE marker, so the test can SIGKILL the run exactly mid-checkpoint.
"""

import os
import sys
import time
from pathlib import Path

from engine.train import runs

SLOW_STEP = int(os.environ["SLOW_STEP"])
FLAG_FILE = os.environ["FLAG_FILE"]
_mark_complete = runs.mark_complete


def mark_complete(checkpoint, info=None):
    step = runs.checkpoint_step(checkpoint)
    if step is not None and step >= SLOW_STEP:
        weights = Path(checkpoint) / "adapter_model.safetensors"
        if weights.is_file():
            data = weights.read_bytes()
            weights.write_bytes(data[: len(data) // 2])
        Path(FLAG_FILE).write_text(str(checkpoint))
        time.sleep(3600)
    return _mark_complete(checkpoint, info)


runs.mark_complete = mark_complete

from engine.cli import main  # noqa: E402

sys.argv = ["engine", *sys.argv[1:]]
main()
