"""``engine`` with a write that never finishes: for the kill-mid-write training tests.

Usage: python slow_checkpoint.py ENGINE-ARGS...   (env: HANG_AT, FLAG_FILE, SLOW_STEP)

HANG_AT=checkpoint: when the trainer has written ``checkpoint-N`` (N >= SLOW_STEP) and is about to
declare it complete, cut its adapter weights file in half (what an interrupted write leaves), write
FLAG_FILE and hang before the COMPLETE marker.
HANG_AT=publish: when the final adapter has been written into its temp folder, write FLAG_FILE and
hang before the rename that publishes it.
HANG_AT=promoted: right after the new adapter was promoted, before report.json: FLAG_FILE, then hang.
HANG_AT=evaluate: when the finish phase starts evaluating the new adapter: FLAG_FILE, then evaluate as
usual but slowly (the test sends SIGTERM/SIGINT there, not SIGKILL).
Otherwise the test SIGKILLs the run right there.
"""

import os
import sys
import time
from pathlib import Path

from engine import runs
from engine.train import model as train_model

HANG_AT = os.environ["HANG_AT"]
FLAG_FILE = os.environ["FLAG_FILE"]


def hang(where) -> None:
    Path(FLAG_FILE).write_text(str(where))
    time.sleep(3600)


if HANG_AT == "checkpoint":
    SLOW_STEP = int(os.environ["SLOW_STEP"])
    _mark_complete = runs.mark_complete

    def mark_complete(checkpoint, info=None):
        step = runs.checkpoint_step(checkpoint)
        if step is not None and step >= SLOW_STEP:
            weights = Path(checkpoint) / "adapter_model.safetensors"
            if weights.is_file():
                data = weights.read_bytes()
                weights.write_bytes(data[: len(data) // 2])
            hang(checkpoint)
        return _mark_complete(checkpoint, info)

    runs.mark_complete = mark_complete
elif HANG_AT == "publish":
    _save_adapter = train_model.save_adapter

    def save_adapter(peft_model, profile, out_dir):
        _save_adapter(peft_model, profile, out_dir)
        hang(out_dir)

    train_model.save_adapter = save_adapter
elif HANG_AT == "promoted":
    from engine import adapters

    _set_promoted = adapters.set_promoted

    def set_promoted(*args, **kwargs):
        _set_promoted(*args, **kwargs)
        hang("promoted")

    adapters.set_promoted = set_promoted
elif HANG_AT == "evaluate":
    from engine.train import finish as finish_mod

    _evaluate = finish_mod.evaluate

    def evaluate(*args, **kwargs):
        Path(FLAG_FILE).write_text("evaluate")
        time.sleep(4)  # the signal arrives while the finish phase is busy
        return _evaluate(*args, **kwargs)

    finish_mod.evaluate = evaluate
else:
    raise SystemExit(f"HANG_AT={HANG_AT!r}: use checkpoint, publish, promoted or evaluate")

from engine.cli import main  # noqa: E402

sys.argv = ["engine", *sys.argv[1:]]
main()
