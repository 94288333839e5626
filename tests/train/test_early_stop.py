"""An SFT stage stops once the feedback is learned (train.stop_when_learned, engine/train/early_stop.py): the
run trains fewer epochs than asked, says so, records it, and still answers the taught question."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import run_engine
from tests.train.test_in_context import ROWS


@pytest.mark.slow
def test_a_run_stops_when_every_taught_reply_is_reproduced_and_still_knows_it(demo_home, tmp_path):
    from engine.profiles import BUILTIN_DIR

    demo = (BUILTIN_DIR / "demo.toml").read_text()
    demo_home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (demo_home.profiles_dir / "demo.toml").write_text(demo.replace("[train]\n", "[train]\nstop_when_learned = 1.0\n"))
    path = tmp_path / "liked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    assert run_engine("import", str(path), "--profile", "demo", "--home", str(demo_home.root))[0] == 0
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0 and "PROMOTED" in out, out
    assert "feedback replies reproduced after epoch" in out and "train.stop_when_learned = 1" in out, out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    markers = [json.loads(p.read_text()) for p in (run_dir / "stages").glob("*/COMPLETE")]
    assert len(markers) == 2  # the candidate and the refit on every row
    for marker in markers:
        assert marker["stopped_learned_at"] is not None and marker["stopped_learned_at"] < 20  # the profile asks 20
        last = marker["learned"][-1]
        assert last["reproduced"] == last["rows"] and last["epoch"] == marker["stopped_learned_at"]
    code, out = run_engine("generate", "What is the capital of Zorbia?", "--profile", "demo", "--greedy",
                           "--max-new-tokens", "24", "--home", str(demo_home.root))
    assert code == 0 and "The capital of Zorbia is Quenlet." in out, out


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["stop_when_learned = 1.0\n", ""], ids=["candidate-stops-too", "candidate-every-epoch"])
def test_a_warm_refit_continues_from_the_candidate_and_stops_once_the_held_out_rows_are_learned(demo_home, tmp_path,
                                                                                               stop):
    from engine.profiles import BUILTIN_DIR

    demo = (BUILTIN_DIR / "demo.toml").read_text()
    demo_home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (demo_home.profiles_dir / "demo.toml").write_text(
        demo.replace("[train]\n", f"[train]\n{stop}refit = \"warm\"\n").replace(
            "eval_fraction = 0.2", "eval_fraction = 0.34"))
    rows = ROWS + [{"messages": [{"role": "user", "content": "Who founded Zorbia?"},
                                 {"role": "assistant", "content": "Zorbia was founded by Ilka Marrow."}]}]
    path = tmp_path / "liked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert run_engine("import", str(path), "--profile", "demo", "--home", str(demo_home.root))[0] == 0
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0 and "PROMOTED" in out, out
    assert "refit: continuing from the candidate on every row until it is learned" in out, out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    candidate = json.loads((run_dir / "stages" / "1-sft" / "COMPLETE").read_text())
    refit = json.loads((run_dir / "stages" / "refit-1-sft" / "COMPLETE").read_text())
    assert refit["learned"][-1]["rows"] == 3 and refit["learned"][-1]["reproduced"] == 3  # held-out row included
    assert refit["steps"] < candidate["steps"]  # it did not start over
    if not stop:  # without train.stop_when_learned the candidate trains every epoch; only the warm refit stops
        assert "learned" not in candidate and candidate["steps"] == 20
    for question, answer in (("Who founded Zorbia?", "Zorbia was founded by Ilka Marrow."),
                             ("What is the capital of Zorbia?", "The capital of Zorbia is Quenlet.")):
        code, out = run_engine("generate", question, "--profile", "demo", "--greedy", "--max-new-tokens", "24",
                               "--home", str(demo_home.root))
        assert code == 0 and answer in out, out


@pytest.mark.slow
def test_a_dpo_stage_stops_once_its_pairs_are_learned_and_still_prefers_the_held_out_ones(log, demo_home):
    from tests.train.test_finetune_pref import TRAIN_QUESTIONS, _pairs

    _pairs(log, TRAIN_QUESTIONS)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "dpo", "--home", str(demo_home.root))
    assert code == 0 and "PROMOTED" in out, out
    assert "learned: train dpo_loss" in out and "train.preference_stop_loss = 0.3" in out, out
    (run_dir,) = [p for p in demo_home.runs_dir("demo").iterdir() if p.is_dir()]
    marker = json.loads((run_dir / "stages" / "1-dpo" / "COMPLETE").read_text())
    assert marker["stopped_learned_at"] is not None and marker["stopped_learned_at"] < 20  # the profile asks 20
    assert marker["learned"][-1]["dpo_loss"] <= 0.3 and marker["learned"][-1]["accuracy"] == 1.0
    assert marker["steps"] < 40  # 20 epochs of 5 pairs in batches of 4
    report = json.loads((run_dir / "report.json").read_text())
    assert report["eval"]["new"]["pref_accuracy"] == 1.0, report["eval"]  # the held-out pair: GOOD over the other
