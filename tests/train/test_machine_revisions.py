"""The offline revision pass on the demo model: critiques nobody revised in the chat get a revision before
training, marked machine_revision, weighed below accepted revisions, listed in the run, and skippable."""

from __future__ import annotations

import json

import pytest

from engine.feedback import FeedbackLog
from engine.profiles import load_profile
from engine.train import data, revise
from tests.train.conftest import converse, run_engine


class FakeScorer:
    """A reward model that likes longer replies (deterministic: the test knows which candidate wins)."""

    def score_many(self, items):
        return [float(len(reply)) for _, reply in items]


def _critiques(log: FeedbackLog, n: int = 2) -> list[dict]:
    out = []
    for i in range(n):
        _, (reply,) = converse(log, f"Question number {i}?", [f"A long and wordy answer {i}."])
        log.rate(reply["id"], -1, comment="too long")
        out.append(reply)
    return out


@pytest.mark.slow
def test_the_reward_model_picks_one_of_k_revisions_and_rows_are_marked(log, demo_home):
    from engine.runtime import load_model

    replies = _critiques(log)
    state = log.replay()
    items = revise.pending(state)
    assert [i.original.id for i in items] == [r["id"] for r in replies]
    profile = load_profile("demo", demo_home)
    lm = load_model(profile, demo_home, adapter="base")
    found = revise.revise(lm, state, profile, items, k=2, scorer=FakeScorer(), seed=7)
    assert [len(r.candidates) for r in found] == [2, 2] and {r.chosen_by for r in found} == {"reward"}
    for r in found:  # the longest usable candidate is the reward model's favourite
        assert r.revision == max((c for c in r.candidates if c), key=len)
    sft, pref = revise.machine_rows(found)
    assert len(sft) == len(pref) == 2 and {r.source for r in sft + pref} == {"machine_revision"}
    assert pref[0].data["rejected"] == [{"role": "assistant", "content": "A long and wordy answer 0."}]
    assert pref[0].data["chosen"] == [{"role": "assistant", "content": found[0].revision}]
    assert sft[0].data["messages"][:2] == [{"role": "system", "content": "You are a helpful assistant."},
                                           {"role": "user", "content": "Question number 0?"}]
    row = found[0].export_row()
    assert (row["critique"], row["source"], row["outcome"]) == ("too long", "machine_revision", None)


@pytest.mark.slow
def test_the_self_check_keeps_only_revisions_the_model_says_address_the_critique(log, demo_home):
    from engine.runtime import load_model

    _critiques(log, 1)
    state = log.replay()
    profile = load_profile("demo", demo_home)
    lm = load_model(profile, demo_home, adapter="base")
    (found,) = revise.revise(lm, state, profile, revise.pending(state), k=2, scorer=None)
    assert found.chosen_by == "self-check" and set(found.verdicts) <= {0.0, 1.0}
    # the random demo model rarely says "yes": whatever it said, a row exists exactly for a yes
    assert (found.chosen is None) == (found.verdicts == [0.0, 0.0])
    assert len(revise.machine_rows([found])[0]) == (0 if found.chosen is None else 1)


def test_accepted_revisions_weigh_twice_a_machine_revision(log):
    from tui.session import ChatSession

    s = ChatSession(log.home, "demo")
    u = s.add_user("q")
    a = s.add_reply(u.id, "long", {})
    r = s.add_revision(a.id, "short", {}, "too long", "{critique}")
    s.resolve_revision(r.id, "accepted")
    rows = data.collect(log.home, "demo").rows
    weighted = revise.weighted(rows.sft)
    assert [x.source for x in weighted] == ["revision", "revision"]
    assert revise.pending(s.state) == []  # revised in the chat: nothing for the offline pass


@pytest.mark.slow
def test_finetune_lists_machine_revisions_and_the_flag_leaves_them_out(log, demo_home, monkeypatch):
    _critiques(log, 2)
    for i in range(4):  # enough liked replies for an SFT run on their own
        _, (reply,) = converse(log, f"Say hello {i}", [f"Hello {i}!"])
        log.rate(reply["id"], 1)
    monkeypatch.setattr(revise, "_says_yes", lambda *a: True)  # the random demo model as a willing judge
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "1",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_dir = max(demo_home.runs_dir("demo").glob("*-sft"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["machine_revisions"]["critiques"] == 2 and manifest["counts"]["machine_revision_sft"] == 2
    listed = [json.loads(x) for x in (run_dir / "data" / "machine_revisions.jsonl").read_text().splitlines()]
    assert [x["source"] for x in listed] == ["machine_revision"] * 2
    assert "machine revisions: 2 of 2" in out

    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--max-steps", "1", "--from", "base",
                           "--no-machine-revisions", "--home", str(demo_home.root))
    assert code == 0, out
    run_dir = max(demo_home.runs_dir("demo").glob("*-sft"))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["machine_revisions"] == {"enabled": False} and "machine_revision_sft" not in manifest["counts"]
