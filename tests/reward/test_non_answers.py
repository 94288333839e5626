"""The chosen-vs-non-answer pairs a reward model trains on beside the person's (engine/reward/non_answers.py)."""

from __future__ import annotations

from engine.reward import non_answers
from engine.reward.data import Pair

LONG = "Air scatters blue sunlight more than red light, so the sky looks blue."


def _pairs(n: int, chosen: str = LONG) -> list[Pair]:
    return [Pair([{"role": "user", "content": f"q{i}"}], [{"role": "assistant", "content": chosen}],
                 [{"role": "assistant", "content": "A long padded reply " * 5}], group=f"g{i}") for i in range(n)]


def test_a_share_of_the_answers_is_paired_against_a_training_non_answer_and_short_answers_never():
    extra = non_answers.training_pairs(_pairs(10) + _pairs(10, chosen="Yes, it is."), 0.5, seed=0)
    assert len(extra) == 5  # half of the 10 real answers; "Yes, it is." may itself be the right short answer
    for pair in extra:
        assert pair.chosen == [{"role": "assistant", "content": LONG}]
        assert pair.rejected[0]["content"] in non_answers.TRAINING and pair.rejected[0]["role"] == "assistant"
    assert extra == non_answers.training_pairs(_pairs(10) + _pairs(10, chosen="Yes, it is."), 0.5, seed=0)
    assert non_answers.training_pairs(_pairs(10), 0.0, seed=0) == []


def test_the_held_out_check_uses_non_answers_the_training_never_saw_in_the_pairs_own_shape():
    assert not set(non_answers.HELD_OUT) & set(non_answers.TRAINING)
    held = non_answers.held_out(_pairs(3) + _pairs(2, chosen="Fine, thanks."), seed=0)
    assert [i for i, _ in held] == [0, 1, 2]
    assert all(reply[0]["content"] in non_answers.HELD_OUT for _, reply in held)
    text = [Pair("User: why?\nAssistant:", " " + LONG, " no")]
    ((_, reply),) = non_answers.held_out(text, seed=0)
    assert isinstance(reply, str) and reply.startswith(" ") and reply.strip() in non_answers.HELD_OUT
