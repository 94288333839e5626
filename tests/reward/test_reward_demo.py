"""`engine reward` on the demo model: a learnable preference is learned, and the run is a proper run."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.feedback import FeedbackLog
from engine.home import Home
from tests.reward.conftest import N_CONVERSATIONS, install_demo, run_engine
from tests.reward.synthetic import preference_file_rows, write_picks


@pytest.mark.slow
def test_reward_learns_answer_over_refusal_on_held_out_conversations(trained_reward):
    report = trained_reward.report
    ev = report["eval"]
    assert ev["on"] == "held_out" and ev["n"] >= 6
    assert ev["accuracy"] >= 0.9
    assert ev["accuracy"] > ev["baseline_accuracy"]
    assert ev["margin"] > ev["baseline_margin"] + 2.0
    # finetune's shape too, so `engine adapters` can list it
    assert ev["new"]["accuracy"] == ev["accuracy"] and ev["current"]["accuracy"] == ev["baseline_accuracy"]
    out = trained_reward.result.out
    assert "pairwise accuracy" in out and "untrained head" in out
    # the fact replies (>= 6 words) were also trained against non-answers, and checked against unseen ones
    assert report["non_answer_pairs"] > 0 and ev["over_non_answer_n"] > 0
    assert f"chosen replies scored above a non-answer (\"Awful.\", \"Fine.\", ...; none trained on) in " \
           f"{ev['over_non_answer']:.1%} of {ev['over_non_answer_n']} held-out pairs" in out, out


@pytest.mark.slow
def test_reward_run_is_a_frozen_run_dir_and_never_a_promotable_adapter(trained_reward):
    rd = trained_reward.run_dir
    manifest = json.loads((rd / "manifest.json").read_text())
    assert manifest["kind"] == "reward" and manifest["status"] == "finished"
    # identical pairs (same question, same refusal) are deduplicated by the feedback rows
    assert N_CONVERSATIONS * 0.8 <= manifest["counts"]["pref"] <= N_CONVERSATIONS
    assert manifest["counts"]["pref_train"] + manifest["counts"]["pref_eval"] == manifest["counts"]["pref"]
    assert manifest["log_cutoff_ts"] and manifest["data_fingerprint"]
    frozen = [json.loads(line) for line in (rd / "data" / "pref.train.jsonl").read_text().splitlines()]
    assert len(frozen) == manifest["counts"]["pref_train"] and set(frozen[0]) == {"prompt", "chosen", "rejected"}
    assert (rd / "reward_model" / "adapter_config.json").is_file()
    peft_cfg = json.loads((rd / "reward_model" / "adapter_config.json").read_text())
    assert peft_cfg["task_type"] == "SEQ_CLS" and "score" in peft_cfg["modules_to_save"]
    cal = json.loads((rd / "reward_calibration.json").read_text())
    assert cal["std"] > 0 and cal["n"] == 2 * manifest["counts"]["pref_train"]
    assert not (rd / "adapter").exists()
    assert trained_reward.run_id not in adapters.run_ids(trained_reward.home, "demo")
    assert [line for line in (rd / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert oct(rd.stat().st_mode & 0o777) == "0o700"
    assert oct((rd / "report.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_scorer_calibration_and_preference(trained_reward):
    from engine.reward.score import RewardScorer

    scorer = RewardScorer.load(trained_reward.home, "demo")
    assert scorer.run_id == trained_reward.run_id
    prompt = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "What is 17 + 25?"}]
    good_raw, good_z = scorer.score_calibrated(prompt, "The answer is 42.")
    bad_raw, bad_z = scorer.score_calibrated(prompt, "I cannot help with that.")
    assert good_raw > bad_raw and good_z > 0 > bad_z
    assert abs(good_z - (good_raw - scorer.mean) / scorer.std) < 1e-9


@pytest.mark.slow
def test_engine_score_reads_every_trl_preference_style(trained_reward, tmp_path):
    home = str(trained_reward.home.root)
    for style in ("conv-explicit", "conv-implicit", "text-explicit", "text-implicit"):
        path = tmp_path / f"{style}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in preference_file_rows(12, seed=99, style=style)))
        res = run_engine("score", "--profile", "demo", "--home", home, str(path), "--json")
        assert res.code == 0, res.err
        data = json.loads(res.out)
        assert data["n"] == 12 and data["reward_run"] == trained_reward.run_id
        assert len(data["pairs"]) == 12
        if style.startswith("conv"):  # the format it was trained on (chat template): clearly learned
            assert data["accuracy"] >= 0.9 and data["margin"] > 0
    # reversed pairs score the other way round
    rows = preference_file_rows(12, seed=99, style="conv-explicit")
    flipped = tmp_path / "flipped.json"
    flipped.write_text(json.dumps([{**r, "chosen": r["rejected"], "rejected": r["chosen"]} for r in rows]))
    res = run_engine("score", "--profile", "demo", "--home", home, str(flipped))
    assert res.code == 0, res.err
    assert "pairwise accuracy" in res.out
    assert float(res.out.split("pairwise accuracy ")[1].split("%")[0]) <= 10.0


@pytest.mark.slow
def test_engine_score_errors_are_one_sentence(trained_reward, tmp_path):
    home = str(trained_reward.home.root)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "only"}\n')
    res = run_engine("score", "--profile", "demo", "--home", home, str(bad))
    assert res.code == 2 and "bad.jsonl line 2" in res.err and "Traceback" not in res.err
    good = tmp_path / "good.jsonl"
    good.write_text('{"chosen": "a", "rejected": "b"}\n')
    res = run_engine("score", "--profile", "demo", "--home", home, "--reward", "20990101-000000-reward",
                     str(good))
    assert res.code == 2 and "not a finished reward run" in res.err


def test_too_few_pairs_exits_2_without_a_run_dir(home, demo_model_dir):
    install_demo(home, demo_model_dir)
    write_picks(FeedbackLog(home, "demo"), 1, seed=3)
    res = run_engine("reward", "--profile", "demo", "--home", str(home.root))
    assert res.code == 2 and "at least 2" in res.err and "Traceback" not in res.err
    assert not home.runs_dir("demo").exists() or not any(
        p.name.endswith("-reward") for p in home.runs_dir("demo").iterdir())
    res = run_engine("score", "--profile", "demo", "--home", str(home.root), "missing.jsonl")
    assert res.code == 2


def test_no_reward_model_is_a_clear_error(home: Home, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(preference_file_rows(1, 0, "conv-explicit")[0]) + "\n")
    res = run_engine("score", "--profile", "demo", "--home", str(home.root), str(path))
    assert res.code == 2 and "engine reward --profile demo" in res.err


@pytest.mark.slow
def test_eval_without_an_adapter_is_a_clear_error(trained_reward):
    res = run_engine("eval", "--home", str(trained_reward.home.root))  # default profile: demo
    assert res.code == 2 and "no finished adapter" in res.err and "engine finetune" in res.err
    res = run_engine("eval", "--home", str(trained_reward.home.root), "--against", "nothing")
    assert res.code == 2 and "--against" in res.err


@pytest.mark.slow  # the trained reward fixture takes seconds
def test_scorer_folds_the_adapter_into_the_weights_and_scores_as_the_adapter_does(trained_reward):
    """`engine score`, best-of-n and RL score with the LoRA merged in (faster on a CPU); the scores must be
    the adapter's own."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from engine.reward import MODEL_SUBDIR
    from engine.reward.data import encode
    from engine.reward.score import RewardScorer, score_ids

    scorer = RewardScorer.load(trained_reward.home, "demo")
    assert not any("lora_" in name for name, _ in scorer.model.named_parameters())
    model_dir = trained_reward.run_dir / MODEL_SUBDIR
    base = AutoModelForSequenceClassification.from_pretrained(trained_reward.home.demo_model_dir, num_labels=1)
    base.config.pad_token_id = scorer.tokenizer.pad_token_id
    adapter = PeftModel.from_pretrained(base, model_dir).eval()
    prompt = [{"role": "user", "content": "What is 17 + 25?"}]
    ids = [encode(scorer.tokenizer, prompt, [{"role": "assistant", "content": reply}], 128)
           for reply in ("The answer is 42.", "I cannot help with that.", "42", "Let me think: 17 + 25 = 42.")]
    merged, unmerged = score_ids(scorer.model, scorer.tokenizer, ids), score_ids(adapter, scorer.tokenizer, ids)
    assert max(abs(a - b) for a, b in zip(merged, unmerged)) < 1e-4


@pytest.mark.slow  # the trained reward fixture takes seconds (6.4 s of the fast loop)
def test_the_new_score_head_learns_at_ten_times_the_backbones_rate(trained_reward):
    import torch

    from engine.profiles import load_profile
    from engine.reward.backbone import load_tokenizer, new_reward_model, resolve_backbone
    from engine.reward.train import HEAD_LR_RATIO, head_faster

    profile = load_profile("demo", trained_reward.home)
    backbone = resolve_backbone(profile, trained_reward.home)
    model = new_reward_model(backbone, load_tokenizer(backbone), profile, seed=0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": trainable[::2], "weight_decay": 0.1},  # as the Trainer makes them
                                   {"params": trainable[1::2], "weight_decay": 0.0}], lr=1e-4)
    head_faster(optimizer, model, HEAD_LR_RATIO)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert sorted(lr_of) == sorted(id(p) for p in trainable)  # every parameter once
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert lr_of[id(p)] == pytest.approx(1e-3 if ".score." in f".{name}" else 1e-4), name
