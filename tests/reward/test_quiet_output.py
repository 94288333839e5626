"""`engine score` and `engine eval` print their results, not the libraries' loading bars and deprecation
notices (issue 11: "Loading weights: 100%|####|" and a transformers FutureWarning in normal output)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.feedback import FeedbackLog
from tests.faults.faultlib import engine_env
from tests.reward.conftest import install_demo, run_engine
from tests.reward.synthetic import preference_file_rows, write_picks

NOISE = ("Loading weights", "it/s]", "FutureWarning", "warnings.warn", "%|")


@pytest.mark.slow
def test_score_and_eval_print_no_library_noise(home, demo_model_dir, tmp_path):
    install_demo(home, demo_model_dir)
    write_picks(FeedbackLog(home, "demo"), 12, seed=2)
    h = str(home.root)
    assert run_engine("reward", "--profile", "demo", "--home", h, "--max-steps", "2").code == 0
    assert run_engine("finetune", "--profile", "demo", "--home", h, "--method", "sft", "--max-steps", "2").code == 0
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in preference_file_rows(5, 1, "conv-explicit")))
    for argv, expect in ((["score", str(pairs)], "pairwise accuracy"),
                         (["eval", "--n-prompts", "2", "--max-new-tokens", "4"], "reward win rate")):
        out = subprocess.run([sys.executable, "-m", "engine", *argv, "--profile", "demo", "--home", h],
                             env=engine_env(home),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        assert expect in out.stdout
        both = out.stdout + out.stderr
        assert not [n for n in NOISE if n in both], both
