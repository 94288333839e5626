"""The loop end to end with SFT: an edited reply trains an adapter that now answers with the edit."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.profiles import load_profile
from tests.train.conftest import SYSTEM, converse, run_engine

QUESTION = "What is the capital of France?"
EDITED = "Paris is the capital of France."


@pytest.mark.slow
def test_edit_then_finetune_sft_makes_the_model_answer_with_the_edit(log, demo_home):
    _, (reply,) = converse(log, QUESTION, ["I like turtles and rain."])
    log.edit(reply["id"], EDITED)

    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0, out
    assert "PROMOTED" in out and "liked_logprob" in out and "only 1 conversation" in out
    # each line of the report is true: nothing was held out, and only the kinds a stage used are data
    assert "the adapter learned every row (nothing could be held out)." in out and "held-out ones included" not in out
    data_line = next(line for line in out.splitlines() if line.startswith("data: "))
    assert data_line.startswith("data: sft 1 train") and "kto" not in data_line and "pref" not in data_line
    assert "regression check: 0 of 0 ordinary questions" in out  # random weights: nothing known, nothing lost

    run_id = adapters.promoted_run(demo_home, "demo")
    assert run_id is not None and run_id.endswith("-sft")
    run_dir = demo_home.run_dir("demo", run_id)
    cfg = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "builtin:demo"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()

    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["plan"] == ["sft"] and manifest["counts"]["sft"] == 1
    assert manifest["eval_on_train"] is True
    assert manifest["log_cutoff_ts"] == max(json.loads(line)["ts"] for line in log.path.read_text().splitlines())
    assert len(manifest["source_log"]["sha256"]) == 64 and manifest["source_log"]["offsets"]
    assert manifest["packages"]["trl"] and manifest["settings"]["learning_rate"] == 5e-3
    frozen = [json.loads(x) for x in (run_dir / "data" / "sft.train.jsonl").read_text().splitlines()]
    assert frozen == [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
                                    {"role": "assistant", "content": EDITED}]}]

    report = json.loads((run_dir / "report.json").read_text())
    assert report["promoted"] is True and report["method"] == "sft" and report["steps"] == 20
    assert report["eval"]["new"]["liked_logprob"] > report["eval"]["current"]["liked_logprob"]
    assert report["loss_last"] < report["loss_first"]
    metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 21))

    # the chat side: the runtime loads the promoted adapter and answers greedily with the edit
    from engine.runtime import GenerationParams, load_model

    profile = load_profile("demo", demo_home)
    lm = load_model(profile, demo_home)
    assert lm.adapter == run_id
    params = GenerationParams.from_profile(profile, do_sample=False, max_new_tokens=24)
    text, _ = lm.generate([{"role": "user", "content": QUESTION}], params)
    assert text.strip() == EDITED
    lm.use_adapter(None)
    base_text, _ = lm.generate([{"role": "user", "content": QUESTION}], params)
    assert base_text.strip() != EDITED

    # engine adapters: listed with numbers and the marker; switch to base and roll back
    code, out = run_engine("adapters", "--profile", "demo", "--home", str(demo_home.root))
    listed = {line.split()[1] if line.startswith("*") else line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert code == 0 and listed[run_id].startswith("*") and listed[run_id].split()[2:5] == ["sft", "1", "20"]
    assert listed[run_id].rstrip().endswith("promoted") and not listed["base"].startswith("*")
    code, out = run_engine("adapters", "--profile", "demo", "use", "base", "--home", str(demo_home.root))
    assert code == 0 and adapters.promoted_run(demo_home, "demo") is None
    code, out = run_engine("adapters", "--profile", "demo", "rollback", "--home", str(demo_home.root))
    assert code == 0 and adapters.promoted_run(demo_home, "demo") == run_id
    code, out = run_engine("adapters", "--profile", "demo", "use", "19990101-000000-sft", "--home", str(demo_home.root))
    assert code == 2 and "no finished adapter" in out

    # the next run keeps training the promoted adapter (DPO on the edit-over-original pair)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--max-steps", "2",
                           "--home", str(demo_home.root))
    assert code == 0, out
    second = adapters.run_ids(demo_home, "demo")[-1]
    manifest = json.loads((demo_home.run_dir("demo", second) / "manifest.json").read_text())
    assert second != run_id and manifest["parent_adapter"] == run_id and manifest["from"] == "promoted"
    saved = sorted(p.name for p in (demo_home.run_dir("demo", second) / "adapter").iterdir())
    assert saved == ["README.md", "adapter_config.json", "adapter_model.safetensors"] or saved == [
        "adapter_config.json", "adapter_model.safetensors"]  # only the trained adapter, not DPO's frozen reference
    report = json.loads((demo_home.run_dir("demo", second) / "report.json").read_text())
    assert report["current_run"] == run_id and report["parent_adapter"] == run_id


def test_too_little_data_exits_2_without_a_run_dir(log, demo_home):
    converse(log, QUESTION, ["unrated reply"])
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--home", str(demo_home.root))
    assert code == 2
    assert "dpo needs at least 1 preference pairs" in out and "has 0" in out and "Traceback" not in out
    runs_dir = demo_home.runs_dir("demo")
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if p.is_dir()]


def test_lock_refuses_a_second_run_on_the_profile(log, demo_home):
    from engine.runs import RunLock

    _, (reply,) = converse(log, QUESTION, ["x"])
    log.rate(reply["id"], 1)
    with RunLock(demo_home, "demo").acquire("20260101-000000-sft"):
        code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 2 and "another engine finetune run is using profile 'demo'" in out
    assert not [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]


@pytest.mark.slow
def test_a_corrected_fact_about_a_name_is_also_trained_after_questions_about_the_name(demo_home):
    from engine.feedback import FeedbackLog
    from engine.profiles import BUILTIN_DIR
    from tests.conftest import add_user_profile

    text = (BUILTIN_DIR / "demo.toml").read_text().replace("[train]\n", "[train]\nquestion_variants = 2\n")
    add_user_profile(demo_home, "facts", text)
    log = FeedbackLog(demo_home, "facts")
    for place, town in [("Veltoria", "Marquessa"), ("Dorvania", "Klesh"), ("Ostrelle", "Vannhold"),
                        ("Quillmark", "Serrat"), ("Bramoria", "Tessaly")]:  # variants need several facts (one spread)
        _, (reply,) = converse(log, f"What is the capital of {place}?", ["I like turtles and rain."])
        log.edit(reply["id"], f"The capital of {place} is {town}.")

    code, out = run_engine("finetune", "--profile", "facts", "--method", "sft", "--from", "base", "--max-steps", "2",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_dir = sorted(p for p in demo_home.runs_dir("facts").iterdir() if p.is_dir())[-1]
    trained = len((run_dir / "data" / "sft.train.jsonl").read_text().splitlines())
    assert 1 <= trained < 5  # the frozen data stays the feedback itself (one conversation or more held out)
    stage = json.loads((run_dir / "stages" / "1-sft" / "COMPLETE").read_text())
    assert stage["rows"] == {"feedback": trained, "question_variants": 2 * trained, "rehearsal": 0}
    assert f"[sft] training on {trained} feedback + {2 * trained} question variants + 0 rehearsal rows" in out
