"""The gate never throws feedback away, and never judges an adapter on rows it trained on.

(a) after a promoted run, every piece of feedback given before it is in the adapter in use;
(b) the gate compares adapters only on rows that neither of them trained on.
"""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.profiles import load_profile
from engine.train import data
from engine.train.methods import METHODS
from tests.train.conftest import SYSTEM, converse, run_engine

# one style across both (what a user who likes replies tends to like), so that learning one reply also
# makes the other more likely and the gate, judging on the held-out one, can see the candidate is better
LIKED = {
    "What colour is the sky on Veltoria?": "The short answer is: green, with violet clouds.",
    "Who keeps the lighthouse at Marrow Point?": "The short answer is: old Tamsin Reed.",
}


def _greedy(home, question: str) -> str:
    from engine.runtime import GenerationParams, load_model

    profile = load_profile("demo", home)
    lm = load_model(profile, home)
    params = GenerationParams.from_profile(profile, do_sample=False, max_new_tokens=32)
    text, _ = lm.generate([{"role": "user", "content": question}], params, system_prompt=SYSTEM)
    return text.strip()


@pytest.mark.slow
def test_two_liked_replies_one_finetune_both_answers_are_learned(log, demo_home):
    for question, answer in LIKED.items():
        _, (reply,) = converse(log, question, [answer])
        log.rate(reply["id"], +1)

    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0, out
    run_id = adapters.promoted_run(demo_home, "demo")
    assert run_id is not None, out
    manifest = json.loads((demo_home.run_dir("demo", run_id) / "manifest.json").read_text())
    assert manifest["rows"]["sft"] == {"train": 1, "eval": 1}  # one conversation was held out for the gate ...
    report = json.loads((demo_home.run_dir("demo", run_id) / "report.json").read_text())
    assert report["adapter_rows"] == "all" and "held-out ones included" in out  # ... and learned after it
    for question, answer in LIKED.items():
        assert _greedy(demo_home, question) == answer


def _rows(run_dir, part: str) -> set[str]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    kinds = {name: m.rows for name, m in METHODS.items()}
    return {data.row_key(kinds[m], r) for m in manifest["plan"] for r in data.read_rows(run_dir / "data", kinds[m], part)}


@pytest.mark.slow
def test_no_row_the_gate_judged_on_was_trained_by_either_adapter(log, demo_home):
    def edits(prefix: str, n: int) -> None:
        for i in range(n):
            _, (reply,) = converse(log, f"{prefix} question {i}?", [f"draft {i}"])
            log.edit(reply["id"], f"The {prefix} answer {i} is short.")

    edits("first", 4)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "4",
                           "--home", str(demo_home.root))
    assert code == 0 and "PROMOTED" in out, out
    first = adapters.promoted_run(demo_home, "demo")

    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "4",
                           "--home", str(demo_home.root))
    assert code == 2 and "no feedback that adapter" in out  # nothing new: nothing to judge on

    edits("second", 4)
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "4",
                           "--home", str(demo_home.root))
    assert code == 0, out
    second = sorted(p.name for p in demo_home.runs_dir("demo").iterdir() if p.is_dir())[-1]
    run1, run2 = demo_home.run_dir("demo", first), demo_home.run_dir("demo", second)
    manifest2 = json.loads((run2 / "manifest.json").read_text())
    assert manifest2["gate_against"] == first and manifest2["parent_adapter"] == first

    judged = _rows(run2, "eval")
    assert judged and manifest2["eval_rows"] == sorted(judged)
    # the adapter in use (run 1, refit on all its rows) never saw them ...
    assert judged.isdisjoint(_rows(run1, "all"))
    # ... nor did run 2's candidate, the adapter the gate judged
    assert judged.isdisjoint(_rows(run2, "train"))
    # and all of them are new feedback: every judged conversation is one of the second batch
    assert all("second" in json.dumps(r) for r in data.read_rows(run2 / "data", "sft", "eval"))
    # the final adapter of run 2 learned everything: the held-out rows too
    report2 = json.loads((run2 / "report.json").read_text())
    if report2["promoted"]:
        assert report2["adapter_rows"] == "all"
        assert data.adapter_rows(demo_home, "demo", second) >= _rows(run1, "all") | _rows(run2, "all")
