"""Training rows from replayed feedback: the exact TRL rows each kind of judgement produces."""

from __future__ import annotations

import pytest

from engine.feedback import FeedbackLog, preference_rows, sft_rows, unpaired_rows

SYS = {"role": "system", "content": "Be brief."}


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


GEN = {"system_prompt": "Be brief.", "model": "demo"}
P1 = [SYS, U("Capital of France?")]
P2 = [SYS, U("Capital of France?"), A("Paris."), U("And Spain?")]
Q1 = [U("Say hi")]
Q2 = [U("Say hi"), A("Hello there!"), U("Again?")]  # the earlier reply as edited
R1 = [U("Pick one")]


@pytest.fixture
def state(home):
    log = FeedbackLog(home, "demo")
    ids = {}

    def msg(name, conv, parent, role, text, gen=None):
        ids[name] = log.add_message(conv, ids.get(parent), role, text, gen)["id"]

    # c1: regenerations with thumbs and a pick, then a follow-up reply fixed by an edit.
    msg("u1", "c1", None, "user", "Capital of France?")
    msg("a1", "c1", "u1", "assistant", "Paris.", GEN)
    msg("a2", "c1", "u1", "assistant", "Lyon.", GEN)
    msg("a3", "c1", "u1", "assistant", "Marseille.", GEN)
    log.rate(ids["a1"], 1)
    log.rate(ids["a2"], -1)
    log.choose(ids["a1"], [ids["a1"], ids["a2"], ids["a3"]], "regenerate")
    msg("u2", "c1", "a1", "user", "And Spain?")
    msg("b1", "c1", "u2", "assistant", "Barcelona.", GEN)
    log.edit(ids["b1"], "Madrid.")
    # c2: no system prompt; an A/B pick, the winner later edited; a liked reply after it.
    msg("v1", "c2", None, "user", "Say hi")
    msg("w1", "c2", "v1", "assistant", "Hello!", {"system_prompt": ""})
    msg("w2", "c2", "v1", "assistant", "Yo.", None)
    log.choose(ids["w1"], [ids["w1"], ids["w2"]], "compare")
    log.edit(ids["w1"], "Hello there!")
    msg("v2", "c2", "w1", "user", "Again?")
    msg("w3", "c2", "v2", "assistant", "Hello again!")
    log.rate(ids["w3"], 1)
    # c3: picked but then disliked.
    msg("x0", "c3", None, "user", "Pick one")
    msg("x1", "c3", "x0", "assistant", "One.")
    msg("x2", "c3", "x0", "assistant", "Two.")
    log.choose(ids["x1"], [ids["x1"], ids["x2"]], "best_of")
    log.rate(ids["x1"], -1)
    st = log.replay()
    st.ids = ids
    assert st.problems == []
    return st


def test_sft_rows(state):
    rows = sft_rows(state)
    assert [r.data for r in rows] == [
        {"messages": P1 + [A("Paris.")]},  # liked (and picked)
        {"messages": P2 + [A("Madrid.")]},  # edited: the edited text
        {"messages": Q1 + [A("Hello there!")]},  # picked and edited
        {"messages": Q2 + [A("Hello again!")]},  # liked; the earlier turn uses its edited text
    ]  # not: disliked Lyon, unjudged Marseille/Yo/Two, picked-but-disliked One
    ids = state.ids
    assert [(r.conversation_id, r.message_ids) for r in rows] == [
        ("c1", (ids["a1"],)),
        ("c1", (ids["b1"],)),
        ("c2", (ids["w1"],)),
        ("c2", (ids["w3"],)),
    ]


def test_preference_rows(state):
    rows = preference_rows(state)
    assert [r.data for r in rows] == [
        {"prompt": P2, "chosen": [A("Madrid.")], "rejected": [A("Barcelona.")]},  # edit over original
        {"prompt": P1, "chosen": [A("Paris.")], "rejected": [A("Lyon.")]},  # choice (= liked over disliked)
        {"prompt": P1, "chosen": [A("Paris.")], "rejected": [A("Marseille.")]},  # choice
        {"prompt": Q1, "chosen": [A("Hello there!")], "rejected": [A("Hello!")]},  # edit
        {"prompt": Q1, "chosen": [A("Hello!")], "rejected": [A("Yo.")]},  # compare pick (originals)
        {"prompt": R1, "chosen": [A("One.")], "rejected": [A("Two.")]},  # best_of pick
    ]
    ids = state.ids
    assert rows[1].message_ids == (ids["a1"], ids["a2"]) and rows[0].message_ids == (ids["b1"],)


def test_unpaired_rows(state):
    rows = unpaired_rows(state)
    assert [r.data for r in rows] == [
        {"prompt": P1, "completion": [A("Paris.")], "label": True},
        {"prompt": P1, "completion": [A("Lyon.")], "label": False},
        {"prompt": P2, "completion": [A("Madrid.")], "label": True},
        {"prompt": P2, "completion": [A("Barcelona.")], "label": False},
        {"prompt": Q1, "completion": [A("Hello there!")], "label": True},
        {"prompt": Q1, "completion": [A("Hello!")], "label": False},
        {"prompt": Q2, "completion": [A("Hello again!")], "label": True},
        {"prompt": R1, "completion": [A("One.")], "label": False},
    ]  # Marseille and Yo lost a pick but were not rated down: not labelled


def test_liked_sibling_over_disliked_without_choice_and_dedupe(home):
    log = FeedbackLog(home, "demo")
    for conv in ("c1", "c2"):  # the same exchange twice gives one preference pair, two sft rows
        u = log.add_message(conv, None, "user", "2+2?")
        good = log.add_message(conv, u["id"], "assistant", "4", GEN)
        bad = log.add_message(conv, u["id"], "assistant", "5", GEN)
        meh = log.add_message(conv, u["id"], "assistant", "four-ish", GEN)
        log.rate(good["id"], 1)
        log.rate(bad["id"], -1)
    state = log.replay()
    assert [r.data for r in preference_rows(state)] == [
        {"prompt": [SYS, U("2+2?")], "chosen": [A("4")], "rejected": [A("5")]}
    ]
    assert len(sft_rows(state)) == 2
    assert [r.data["label"] for r in unpaired_rows(state)] == [True, False]
    log.rate(good["id"], 0)  # cleared: the second conversation has no pair, the first still does
    assert len(preference_rows(log.replay())) == 1
    assert meh["id"] not in {i for r in preference_rows(log.replay()) for i in r.message_ids}


def test_tree_system_messages_are_kept_and_empty_feedback_gives_no_rows(home):
    log = FeedbackLog(home, "demo")
    s = log.add_message("c1", None, "system", "You are a pirate.")
    u = log.add_message("c1", s["id"], "user", "Hi")
    a = log.add_message("c1", u["id"], "assistant", "Arr.")
    assert sft_rows(log.replay()) == preference_rows(log.replay()) == unpaired_rows(log.replay()) == []
    log.rate(a["id"], 1)
    assert [r.data for r in sft_rows(log.replay())] == [
        {"messages": [{"role": "system", "content": "You are a pirate."}, U("Hi"), A("Arr.")]}
    ]
