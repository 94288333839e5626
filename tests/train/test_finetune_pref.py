"""DPO and KTO end to end, and the gate refusing an adapter that got worse."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.train import data
from tests.train.conftest import converse, margin, run_engine

GOOD = "Sure, here is a short and kind answer."
BAD = "No. Go away and ask someone else."
TRAIN_QUESTIONS = ["How do I boil an egg?", "What is a prime number?", "Why is the sky blue?",
                   "How far is the moon?", "What is rain made of?", "Can you name a fruit?"]
HELD_OUT_QUESTIONS = ["Where do penguins live?", "What is a verb?"]


def _load(home, run_id):
    from peft import PeftModel

    from engine.profiles import load_profile
    from engine.train import model as model_mod

    profile = load_profile("demo", home)
    path = model_mod.resolve_model_path(profile, home)
    tok = model_mod.load_tokenizer(profile, path)
    base = model_mod.load_base(profile, path, model_mod.train_dtype(profile, "cpu"))
    peft = PeftModel.from_pretrained(base, str(adapters.adapter_path(home, "demo", run_id)))
    peft.eval()
    return peft, tok


def _margins(model, tok, questions):
    return [margin(model, tok, q, GOOD, BAD) for q in questions]


def _pairs(log, questions, reverse_in=()):
    """One conversation per question: two sibling replies, the good one liked and the bad one disliked
    (reversed for the conversations in ``reverse_in``)."""
    convs = []
    for q in questions:
        conv, (good, bad) = converse(log, q, [GOOD, BAD])
        flip = conv in reverse_in or q in reverse_in
        log.rate(good["id"], -1 if flip else 1)
        log.rate(bad["id"], 1 if flip else -1)
        convs.append(conv)
    return convs


@pytest.mark.slow
def test_dpo_raises_the_chosen_margin_on_training_and_held_out_pairs(log, demo_home):
    _pairs(log, TRAIN_QUESTIONS)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--max-steps", "12",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_id = adapters.promoted_run(demo_home, "demo")
    assert run_id and run_id.endswith("-dpo"), out
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["rows"]["pref"]["eval"] >= 1 and report["eval"]["new"]["pref_accuracy"] == 1.0
    assert report["eval"]["current"]["pref_accuracy"] == 0.5  # base vs itself: ties

    model, tok = _load(demo_home, run_id)
    with model.disable_adapter():
        before_train, before_held = _margins(model, tok, TRAIN_QUESTIONS), _margins(model, tok, HELD_OUT_QUESTIONS)
    after_train, after_held = _margins(model, tok, TRAIN_QUESTIONS), _margins(model, tok, HELD_OUT_QUESTIONS)
    assert all(a > b + 1.0 for a, b in zip(after_train, before_train)), (before_train, after_train)
    assert all(a > b + 1.0 for a, b in zip(after_held, before_held)), (before_held, after_held)


@pytest.mark.slow
def test_gate_refuses_an_adapter_trained_on_reversed_pairs(log, demo_home):
    # the conversations the run will hold out keep honest ratings; all the others are reversed
    questions = TRAIN_QUESTIONS[:5]
    convs = _pairs(log, questions, reverse_in=questions)  # first write, to learn the conversation ids
    held = set(data.split_conversations(convs, 0.2, 0).eval_conversations)
    for conv in convs:
        if conv in held:  # re-rate the held-out conversation honestly (latest rating wins)
            replies = [m for m in log.replay().conversations[conv].messages if m.role == "assistant"]
            for m in replies:
                log.rate(m.id, 1 if m.content == GOOD else -1)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--max-steps", "10",
                           "--home", str(demo_home.root))
    assert code == 0, out
    assert "NOT PROMOTED" in out and "pref_accuracy is lower" in out
    assert adapters.promoted_run(demo_home, "demo") is None
    (run_id,) = adapters.run_ids(demo_home, "demo")
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["promoted"] is False and report["eval"]["new"]["pref_accuracy"] < 0.5


@pytest.mark.slow
def test_kto_on_likes_and_dislikes_prefers_the_liked_style(log, demo_home):
    for i, q in enumerate(TRAIN_QUESTIONS):
        _, (reply,) = converse(log, q, [GOOD if i % 2 == 0 else BAD])
        log.rate(reply["id"], 1 if i % 2 == 0 else -1)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "kto", "--max-steps", "12",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_id = adapters.run_ids(demo_home, "demo")[-1]
    manifest = json.loads((demo_home.run_dir("demo", run_id) / "manifest.json").read_text())
    assert manifest["plan"] == ["kto"] and manifest["counts"]["kto_desirable"] == 3
    model, tok = _load(demo_home, run_id)
    with model.disable_adapter():
        before = _margins(model, tok, HELD_OUT_QUESTIONS)
    after = _margins(model, tok, HELD_OUT_QUESTIONS)
    assert all(a > b + 1.0 for a, b in zip(after, before)), (before, after)
    assert adapters.promoted_run(demo_home, "demo") == run_id, out


@pytest.mark.slow
def test_auto_with_enough_pairs_runs_sft_then_dpo_and_says_why(log, demo_home):
    _pairs(log, TRAIN_QUESTIONS[:4])
    code, out = run_engine("finetune", "--profile", "demo", "--max-steps", "2", "--home", str(demo_home.root))
    assert code == 0, out
    (run_id,) = adapters.run_ids(demo_home, "demo")
    run_dir = demo_home.run_dir("demo", run_id)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert run_id.endswith("-sft-dpo") and manifest["plan"] == ["sft", "dpo"] and manifest["method"] == "auto"
    assert "SFT on the replies, then DPO on the pairs" in manifest["why"]
    assert (run_dir / "stages" / "1-sft" / "COMPLETE").is_file() and (run_dir / "stages" / "2-dpo" / "COMPLETE").is_file()
    report = json.loads((run_dir / "report.json").read_text())
    # 2 + 2 steps for the candidate, the same again for the refit on every row once the gate passed; a DPO stage
    # ends sooner when its pairs are learned (train.preference_stop_loss)
    markers = {p.parent.name: json.loads(p.read_text()) for p in (run_dir / "stages").glob("*/COMPLETE")}
    assert len(markers) == (4 if report["promoted"] else 2), markers
    assert all(m["steps"] == 2 for name, m in markers.items() if name.endswith("sft"))
    assert all(1 <= m["steps"] <= 2 for name, m in markers.items() if name.endswith("dpo"))
    assert report["method"] == "sft+dpo" and report["steps"] == sum(m["steps"] for m in markers.values())
    if report["promoted"]:
        assert (run_dir / "stages" / "refit-1-sft" / "COMPLETE").is_file()
        assert (run_dir / "stages" / "refit-2-dpo" / "COMPLETE").is_file() and report["adapter_rows"] == "all"
    assert {c["metric"] for c in report["gate"]["checks"]} == {"liked_logprob", "pref_accuracy", "dpo_loss"}
    stages = {json.loads(x)["stage"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()}
    assert stages >= {"sft", "dpo"} and stages <= {"sft", "dpo", "refit-sft", "refit-dpo"}
    assert "loss [sft]" in out and "loss [dpo]" in out
