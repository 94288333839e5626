"""The gate's regression check (engine/train/regression.py): which answers count as kept, which prompts are asked,
and the sentence a person reads when it refuses."""

from __future__ import annotations

import pytest

from engine.train import regression, rehearsal


def _probe(prompt: str) -> regression.Probe:
    return next(p for p in regression.pool() if p.prompt == prompt)


def test_a_right_answer_in_other_words_is_kept_and_a_wrong_one_is_not():
    greece = _probe("What is the capital of Greece?")
    assert greece.passes("The capital of Greece is Athens.")
    assert greece.passes("athens")
    assert not greece.passes("The capital of Greece is Athenia.")
    assert not greece.passes("The capital of Greece is Quenlet.")
    seven = _probe("What is 3 + 4?")
    assert seven.passes("3 + 4 = 7.") and not seven.passes("3 + 4 = 17.") and not seven.passes("It is 7.5")
    assert seven.passes("Three plus four is seven.") and not seven.passes("It is seventeen.")
    hexagon = _probe("How many sides does a hexagon have?")
    assert hexagon.passes("A hexagon is a polygon with six sides.") and not hexagon.passes("It has sixteen sides.")
    lower = _probe("Write a Python function that converts a string to lowercase.")
    assert lower.passes("```python\ndef low(s):\n    return s.lower()\n```")
    assert not lower.passes("Use s.lower() on the string.")  # no function: the code answer is gone


def test_the_set_is_disjoint_from_the_rehearsal_prompts_and_the_bench_controls():
    from bench.learning_data import CONTROL_SPARES, CONTROLS

    asked = {p.prompt.lower() for p in regression.pool()}
    assert len(asked) == len(regression.pool()) >= 96
    assert not asked & {p.lower() for p in rehearsal.prompts()}
    assert not asked & {c.prompt.lower() for c in CONTROLS + CONTROL_SPARES}


def test_half_the_set_is_nearest_to_what_the_run_teaches_and_never_what_it_asks():
    taught = {"what is the capital of veltoria?", "what is the capital of greece?"}
    chosen = regression.choose(regression.pool(), taught, 20)
    prompts = [p.prompt for p in chosen]
    assert len(chosen) == 20 and "What is the capital of Greece?" not in prompts
    assert all(p.startswith("What is the capital of") for p in prompts[:6])  # the look-alikes first
    general = regression.choose(regression.pool(), set(), 20)
    assert [p.prompt for p in general] == [p.prompt for p in regression.pool()[:20]]  # a fixed general part


def _rows(replies: dict[str, str]) -> list[dict]:
    probes = [_probe(p) for p in replies]
    return [{"prompt": p.prompt, "kind": p.kind, "answers": list(p.answers), "reply": r, "ok": p.knows(r)}
            for p, r in zip(probes, replies.values())]


def test_only_an_answer_said_up_front_counts_as_known():
    belgium = _probe("What is the capital of Belgium?")
    rambling = ("Belgium is a country in Europe located in Western Europe. It is bordered by the Netherlands to the "
                "north, Germany to the east and France to the south, and its capital is Brussels.")
    assert belgium.passes(rambling) and not belgium.knows(rambling)  # a late answer: noise when it moves
    assert belgium.knows("The capital of Belgium is Brussels.")


REFERENCE = {
    "What is the capital of Greece?": "The capital of Greece is Athens.",
    "What is the capital of Turkey?": "The capital of Turkey is Ankara.",
    "What is the capital of Peru?": "The capital of Peru is Lima.",
    "What is 3 + 4?": "3 + 4 = 7.",
    "What is the capital of Cuba?": "I think it is Madrid.",  # wrong already: never counted
}


def test_changed_answers_are_counted_named_and_refused_past_the_allowance():
    rows = _rows(REFERENCE)
    kept = regression.check(rows, ["Athens.", "Ankara is the capital.", "Lima", "7", "Havana"], 0.05)
    assert kept["ok"] and kept["known"] == 4 and kept["changed"] == 0
    one = regression.check(rows, ["Athens.", "Ankara.", "The capital of Peru is Quenlet.", "7", "Madrid"], 0.05)
    assert one["ok"] and one["changed"] == 1 and one["allowed"] == 1  # one flip is always allowed
    broken = regression.check(rows, ["The capital of Greece is Quenlet.", "Ankara.", "The capital of Peru is "
                                     "Marquessa.", "8", "Madrid"], 0.05)
    assert not broken["ok"] and broken["changed"] == 3
    assert broken["reason"].startswith("regression check: 3 of 4 ordinary questions")
    assert "'What is the capital of Greece?' -> 'The capital of Greece is Quenlet.' (was 'The capital of Greece " \
           "is Athens.')" in broken["reason"]
    assert "Peru" in broken["reason"] and "not promoted" in broken["reason"]


def test_a_collapsed_adapter_is_refused_even_when_the_reference_knows_nothing():
    rows = [{**r, "ok": False} for r in _rows(REFERENCE)] * 3
    collapsed = regression.check(rows, ["+"] * len(rows), 0.05)
    assert not collapsed["ok"] and "collapsed" in collapsed["reason"] and "'+'" in collapsed["reason"]
    fine = regression.check(rows, ["Some long wrong answer here."] * len(rows), 0.05)
    assert fine["ok"] and "only collapse is checked" in fine["reason"]


@pytest.mark.slow  # ~600 generated tokens on the demo model
def test_a_reply_cut_before_its_answer_is_asked_again_longer(demo_home):
    """The candidate's reply stops at 64 tokens; an answer it gives later is kept, one it never gives is lost."""
    import re

    from engine.profiles import load_profile
    from engine.runtime import load_model

    profile = load_profile("demo", demo_home)
    lm = load_model(profile, demo_home, adapter="base")
    question = "What is the capital of Peru?"
    probe = regression.Probe("fact", question, ("unused",))
    short = regression.answer(lm, [probe], profile.system_prompt)[0]
    long = regression.answer(lm, [probe], profile.system_prompt, max_new_tokens=regression.LATE_TOKENS)[0]
    assert short["finish_reason"] == "length" and long["reply"].startswith(short["reply"][:20])
    late_word = next(w for w in re.findall(r"[A-Za-z]{4,}", long["reply"][len(short["reply"]):])
                     if not regression.Probe("fact", question, (w,)).passes(short["reply"]))
    row = {"prompt": question, "kind": "fact", "reply": f"The answer is {late_word}.", "ok": True}
    rows = [{**row, "answers": [late_word]}, {**row, "answers": ["Quenletzorb"]}, {**row, "answers": ["x"], "ok": False}]
    replies = regression.candidate_replies(lm, rows, profile.system_prompt)
    assert [r.get("late", False) for r in replies] == [True, True, False]  # an unknown prompt is never asked again
    result = regression.check(rows, [r["reply"] for r in replies], 0.05, late=2)
    assert result["asked_again"] == 2 and result["known"] == 2 and result["changed"] == 1
    assert result["examples"][0]["now"] == replies[1]["reply"]  # the late answer kept, the missing one lost
