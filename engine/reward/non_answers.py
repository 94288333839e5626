"""The person's chosen replies against non-answers: pairs the reward model trains on beside the person's own, and
the held-out check that it does not pay for saying nothing.

Why: a reward model learns only the differences its pairs show. Trained on "short and right" over "long and
padded" (the bench's style pairs), it scored the shortest reply highest, so RL found that a one-word reply
("Awful.") beats every answer, and collapsed into it (bench/LEARNING_NOTES.md). Nothing in the person's pairs
said that an answer beats no answer, because nobody writes that down. So for ``reward.non_answer_share`` of the
training pairs whose chosen reply is a real answer (at least ``MIN_WORDS`` words), the chosen reply is also paired
against a short non-answer. The held-out check uses non-answers the training never saw (``HELD_OUT``), so it
measures whether the model learned "an answer beats no answer" rather than a list of strings.
"""

from __future__ import annotations

import random

from engine.reward.data import Messages, Pair

TRAINING = ("OK.", "Yes.", "No.", "Sure.", "I don't know.", "Thanks.", "Good question.", "Hmm.", "Maybe.",
            "I'm not sure.", "Great.", "Okay, got it.")
"""Non-answers the training pairs use."""
HELD_OUT = ("Awful.", "Fine.", "Whatever.", "Nope.", "Interesting.", "Right, sure.")
"""Non-answers only the held-out check uses."""
MIN_WORDS = 6
"""A chosen reply shorter than this may itself be a fine short answer ("Yes."): it gets no non-answer pair."""


def _reply_text(reply: Messages | str) -> str:
    if isinstance(reply, list):
        return str(reply[-1].get("content") or "") if reply else ""
    return str(reply)


def _like(reply: Messages | str, text: str) -> Messages | str:
    """``text`` in the shape of ``reply`` (one assistant message, or plain text keeping its leading space)."""
    if isinstance(reply, list):
        return [{"role": "assistant", "content": text}]
    return (" " if str(reply)[:1].isspace() else "") + text


def answers(pairs: list[Pair]) -> list[Pair]:
    """The pairs whose chosen reply is long enough to be more than a non-answer."""
    return [p for p in pairs if len(_reply_text(p.chosen).split()) >= MIN_WORDS]


def training_pairs(pairs: list[Pair], share: float, seed: int) -> list[Pair]:
    """``share`` of ``pairs`` (those with a real answer), each as (its chosen reply > a non-answer)."""
    rng = random.Random(seed)
    eligible = answers(pairs)
    picked = rng.sample(eligible, round(share * len(eligible))) if eligible and share > 0 else []
    return [Pair(p.prompt, p.chosen, _like(p.chosen, rng.choice(TRAINING)), p.group) for p in picked]


def held_out(pairs: list[Pair], seed: int) -> list[tuple[int, Messages | str]]:
    """``(index, non-answer)`` for every pair of ``pairs`` with a real answer: the non-answer (one the training
    never used, in the shape of the pair's replies) that the pair's chosen reply must score above."""
    rng = random.Random(seed + 1)
    return [(i, _like(p.chosen, rng.choice(HELD_OUT))) for i, p in enumerate(pairs)
            if len(_reply_text(p.chosen).split()) >= MIN_WORDS]
