"""The distillation anchor (train.anchor_weight, engine/train/distill.py ``anchor``): a DPO stage also trains the
rehearsal rows toward the starting model's distribution, so the answers nobody judged move less than without it."""

from __future__ import annotations

import json
import shutil

import pytest

from engine.home import Home
from tests.train.conftest import run_engine


def _dpo_run(home: Home, anchor: float) -> tuple[dict, dict, list[dict]]:
    from engine.profiles import BUILTIN_DIR

    demo = (BUILTIN_DIR / "demo.toml").read_text()
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / "demo.toml").write_text(demo.replace(
        "[train]\n", f"[train]\nrehearsal = 2.0\nanchor_weight = {anchor}\npreference_learning_rate = 0.02\n"
                     "preference_stop_loss = 1e-9\n"))
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--max-steps", "12",
                           "--home", str(home.root))
    assert code == 0, out
    if anchor:
        assert "anchored to the starting model on" in out, out
    (run_dir,) = [p for p in home.runs_dir("demo").iterdir() if p.is_dir()]
    marker = json.loads((run_dir / "stages" / "1-dpo" / "COMPLETE").read_text())
    gate = json.loads((run_dir / "gate.json").read_text())
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return marker, gate, metrics


def _kl_to_start(home: Home, rows: list[dict]) -> float:
    """The promoted adapter's KL from the starting model on the rehearsal replies (its own greedy answers to prompts
    nobody judged), nats per token."""
    import torch

    from engine import adapters
    from engine.train import distill
    from engine.train.chat_tokens import tokenize_sft_row
    from tests.train.test_finetune_pref import _load

    run_id = adapters.promoted_run(home, "demo")
    model, tok = _load(home, run_id)
    table: list = []
    encoded = [distill.encode_labels(tokenize_sft_row(tok, r["messages"], "demo"), r["teacher"], table) for r in rows]
    ids, probs = distill.teacher_tensors(table)
    entropy = -(probs * probs.log()).sum(-1)
    total = 0.0
    with torch.inference_mode():
        for e in encoded:
            labels = torch.tensor([e["labels"]])
            logits = model(input_ids=torch.tensor([e["input_ids"]])).logits
            taught = labels[:, 1:][labels[:, 1:] <= distill.OFFSET]
            total += float(distill.loss(logits, labels, ids, probs) - entropy[distill.OFFSET - taught].mean())
    return total / len(encoded)


@pytest.mark.slow
def test_a_dpo_run_anchored_to_the_starting_model_keeps_its_unjudged_answers_closer(log, demo_home, tmp_path):
    from tests.train.test_finetune_pref import TRAIN_QUESTIONS, _pairs

    _pairs(log, TRAIN_QUESTIONS)
    twin = Home.resolve(shutil.copytree(demo_home.root, tmp_path / "twin"))
    free_marker, free_gate, free_metrics = _dpo_run(demo_home, 0.0)
    marker, gate, metrics = _dpo_run(twin, 5.0)
    assert "anchor" not in free_marker["rows"] and not any("anchor_kl" in m for m in free_metrics)
    # a DPO-only plan makes rehearsal rows for the anchor, with the starting model's distribution
    assert marker["rows"]["anchor"] > 0, marker
    kls = [m["anchor_kl"] for m in metrics if "anchor_kl" in m]
    assert kls and all(v == v and abs(v) < 5 for v in kls), kls
    assert marker["steps"] == free_marker["steps"] == 12
    assert gate["promote"] and free_gate["promote"]  # both learned the pairs
    (run_id,) = [p.name for p in twin.runs_dir("demo").iterdir() if p.is_dir()]
    data = twin.run_dir("demo", run_id) / "data" / "rehearsal.jsonl"
    rows = [json.loads(x) for x in data.read_text().splitlines()]  # the unanchored run made none: no anchor
    anchored, free = _kl_to_start(twin, rows), _kl_to_start(demo_home, rows)
    print("kl", anchored, free)
    assert anchored < free / 2, (anchored, free)


@pytest.mark.slow
def test_an_rl_run_makes_rehearsal_rows_and_trains_beside_the_anchor(demo_home):
    from engine.feedback import FeedbackLog
    from engine.train.finetune import FinetuneOptions, run
    from tests.conftest import add_user_profile
    from tests.train.test_rl_demo import HOOKS, PROFILE, _short_answers

    add_user_profile(demo_home, "lenhack", PROFILE.replace("[train]\n", "[train]\nrehearsal = 2.0\nanchor_weight = 1.0\n"))
    _short_answers(FeedbackLog(demo_home, "lenhack"), n=4)
    result = run(demo_home, "lenhack", FinetuneOptions(method="rloo", start_from="base", machine_revisions=False,
                                                       reward=HOOKS, overrides={"max_steps": 2}))
    run_dir = demo_home.run_dir("lenhack", result.run_id)
    marker = json.loads((run_dir / "stages" / "1-rloo" / "COMPLETE").read_text())
    assert marker["steps"] == 2 and marker["rows"]["anchor"] > 0, marker
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("anchor_kl" in m for m in metrics), metrics
