"""Rehearsal by distillation (engine/train/distill.py): the loss, the labels that index the teacher table, and
a run that freezes the starting model's distribution with its rehearsal rows and trains on it."""

from __future__ import annotations

import json

import pytest

from engine.train import distill


def test_plain_labels_give_the_usual_cross_entropy_and_teacher_positions_the_soft_one():
    import torch

    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[-100, 3, -100, distill.OFFSET - 1, distill.OFFSET - 0]])
    ids = torch.tensor([[1, 2], [4, 5]])
    probs = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    logp = torch.log_softmax(logits[0, :-1], dim=-1)
    expected = -(logp[0, 3] + 0.5 * logp[2, 4] + 0.5 * logp[2, 5] + 0.75 * logp[3, 1] + 0.25 * logp[3, 2]) / 3
    assert torch.allclose(distill.loss(logits, labels, ids, probs), expected)
    plain = torch.tensor([[-100, 3, 6, -100, 0]])
    ce = torch.nn.functional.cross_entropy(logits[0, :-1], plain[0, 1:], ignore_index=-100)
    assert torch.allclose(distill.loss(logits, plain, ids, probs), ce)


def test_teacher_positions_are_relabelled_only_when_the_tokens_match():
    row = {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}
    teacher = {"input_ids": [5, 6, 7, 8], "positions": [2, 3], "ids": [[7, 1], [8, 2]],
               "logprobs": [[-0.1, -2.0], [-0.2, -1.5]]}
    table: list = []
    out = distill.encode_labels(row, teacher, table)
    assert out["labels"] == [-100, -100, distill.OFFSET, distill.OFFSET - 1] and len(table) == 2
    other = distill.encode_labels({"input_ids": [5, 6, 9, 8], "labels": [-100, -100, 9, 8]}, teacher, table)
    assert other["labels"] == [-100, -100, 9, 8] and len(table) == 2  # another tokenization: plain SFT


@pytest.mark.slow
def test_a_run_with_distilled_rehearsal_freezes_the_teacher_and_trains(log, demo_home):
    from engine.profiles import BUILTIN_DIR
    from tests.train.conftest import converse, run_engine

    for i in range(3):
        _, (reply,) = converse(log, f"Question number {i}?", [f"draft {i}"])
        log.edit(reply["id"], f"The answer to question {i} is short.")
    demo = (BUILTIN_DIR / "demo.toml").read_text()
    demo_home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (demo_home.profiles_dir / "demo.toml").write_text(demo.replace("[train]\n", "[train]\nrehearsal = 2.0\n"
                                                                              "rehearsal_distill = true\n"))
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "3",
                           "--home", str(demo_home.root))
    assert code == 0, out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    rows = [json.loads(x) for x in (run_dir / "data" / "rehearsal.jsonl").read_text().splitlines()]
    assert rows and all("teacher" in r for r in rows)
    teacher = rows[0]["teacher"]
    assert len(teacher["ids"]) == len(teacher["positions"]) and len(teacher["ids"][0]) == distill.TOP_K
    complete = json.loads((run_dir / "stages" / "1-sft" / "COMPLETE").read_text())
    assert complete["rows"]["distilled_rehearsal"] == len(rows)  # every row's tokens matched its teacher's
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["rehearsal"]["distilled"] == len(rows)
    losses = [json.loads(x)["loss"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    assert losses and all(v == v and 0 < v < 50 for v in losses)
