"""Reward models: `engine reward` (train), `engine score`, `engine eval`, and best-of-n sampling.

A reward run lives in ``home/runs/<profile>/<run-id>`` like a finetune run, with ``kind: "reward"``
in its manifest and its model in ``reward_model/`` (not ``adapter/``, so a reward head can never be
promoted as the chat model's adapter). ``reward_calibration.json`` is written last: a run that has it
is finished and can score. Nothing here imports torch at import time.
"""

from __future__ import annotations

REWARD_KIND = "reward"
MODEL_SUBDIR = "reward_model"
CALIBRATION_FILE = "reward_calibration.json"
BACKBONE_FILE = "reward_backbone.json"
