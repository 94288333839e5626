"""A learnable preference pattern for reward tests: replies that answer beat replies that refuse.

Prompts are varied arithmetic and trivia questions; answers and refusals are varied too, so a
reward model has to learn "answers" vs "refuses", not one string. Written through the public
FeedbackLog API exactly as the TUI writes a regenerate-and-pick.
"""

from __future__ import annotations

import random
import uuid

REFUSALS = [
    "I cannot help with that.",
    "Sorry, I can't answer that.",
    "I won't do that.",
    "That is not something I can help with.",
    "I am unable to assist with this request.",
    "No. I refuse to answer.",
]
SUBJECTS = ["cats", "rivers", "music", "bread", "trains", "stars", "paint", "rain"]


def question_and_answer(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    kind = rng.randrange(3)
    if kind == 0:
        return f"What is {a} + {b}?", f"The answer is {a + b}."
    if kind == 1:
        return f"What is {a} times {b}?", f"{a} times {b} is {a * b}."
    s = rng.choice(SUBJECTS)
    return f"Tell me one fact about {s}.", f"Here is a fact: {s} are interesting and common."


def pair(rng: random.Random) -> tuple[str, str, str]:
    """(question, good reply, refusal)."""
    q, good = question_and_answer(rng)
    return q, good, rng.choice(REFUSALS)


def write_picks(log, n: int, seed: int = 0, system_prompt: str = "You are a helpful assistant.") -> None:
    """``n`` conversations, each a question with two replies and a pick of the one that answers."""
    rng = random.Random(seed)
    gen = {"system_prompt": system_prompt}
    for _ in range(n):
        conv = uuid.UUID(int=rng.getrandbits(128)).hex  # seeded: the held-out split is reproducible
        q, good, bad = pair(rng)
        user = log.add_message(conv, None, "user", q)
        replies = [good, bad] if rng.random() < 0.5 else [bad, good]
        ids = {text: log.add_message(conv, user["id"], "assistant", text, generation=gen)["id"] for text in replies}
        log.choose(ids[good], list(ids.values()), "regenerate")


def preference_file_rows(n: int, seed: int, style: str) -> list[dict]:
    """TRL preference rows in one of four styles: conv-explicit, conv-implicit, text-explicit, text-implicit."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q, good, bad = pair(rng)
        if style == "conv-explicit":
            rows.append({"prompt": [{"role": "user", "content": q}],
                         "chosen": [{"role": "assistant", "content": good}],
                         "rejected": [{"role": "assistant", "content": bad}]})
        elif style == "conv-implicit":
            user = {"role": "user", "content": q}
            rows.append({"chosen": [user, {"role": "assistant", "content": good}],
                         "rejected": [user, {"role": "assistant", "content": bad}]})
        elif style == "text-explicit":
            rows.append({"prompt": f"User: {q}\nAssistant: ", "chosen": good, "rejected": bad})
        elif style == "text-implicit":
            rows.append({"chosen": f"User: {q}\nAssistant: {good}", "rejected": f"User: {q}\nAssistant: {bad}"})
        else:
            raise ValueError(style)
    return rows
