"""Question variants: a short taught reply about a named thing is also trained as the answer to questions
about that name, so a correction carries to other wordings of its question.

Why: SFT that learns "The capital of Veltoria is Marquessa." from "What is the capital of Veltoria?" binds
the fact to the question's words; asked "Which city is the seat of Veltoria's government?" the tuned
SmolLM2 answered with another fact's name or with the neighbourhood (14 of 20 rephrased questions right
against 19 of 20 taught ones, bench/LEARNING_NOTES.md). Training the same reply also after "Tell me about
Veltoria." ties it to the name, which every wording of the question shares. A 135M model cannot paraphrase
the question itself (asked to, it answers it), so the variants are fixed rewrites here, deterministic: a
resume, the candidate and the refit all see the same rows.

Which rows: single-turn SFT rows (an optional system message, one user turn, the reply) whose reply is
short (at most ``MAX_REPLY_WORDS`` words: a stated fact, not an essay or code) and whose question names
something (a capitalised word after the first). ``train.question_variants`` rows per such row (0: off);
they train beside their row in the same part of the split, so the gate never judges a row whose variant
was trained, and they are never counted as feedback. Only when the run has at least ``MIN_NAMED_ROWS`` such
rows: measured on SmolLM2, 20 corrections with 2 variants each kept 26-28 of 30 control answers and took the
rephrased questions from 12-14 to 16-17 of 20, while ONE correction with its two variants spread to its
neighbour ("The capital of France is Marquessa.", tests/real) even beside 24 rehearsal rows. With one fact
of a kind nothing asks the model to tell names apart, so "Tell me about Veltoria." teaches "the answer is
Marquessa" as much as "Veltoria's capital is Marquessa"; with many, the name is what separates them. The
templates are English: a profile whose person writes in another language should keep the setting at 0.
"""

from __future__ import annotations

import re

MAX_REPLY_WORDS = 40
MIN_NAMED_ROWS = 5
"""Variants only when the run has at least this many rows that get them (measured: 1 spread, 20 helped;
5 is between the two and not measured itself)."""
TEMPLATES = ("Tell me about {name}.", "What do you know about {name}?", "What can you tell me about {name}?",
             "Give me one fact about {name}.")

_TOKEN = re.compile(r"\S+")
_STRIP = ".,;:!?\"()[]"
_JOINERS = {"of", "and", "de", "du", "la", "von", "van"}  # "Romeo and Juliet", "Bank of England"
_PLAIN = re.compile(r"[a-z][a-z-]*")
_FUNCTION_WORDS = {"of", "in", "on", "at", "to", "by", "from", "for", "with", "about", "into", "across", "through",
                   "is", "was", "are", "were", "be", "does", "did", "do", "has", "have", "had", "and", "or", "not",
                   "what", "which", "who", "whom", "whose", "where", "when", "how", "why", "that", "this", "a", "an", "the"}


def name_in(question: str) -> str | None:
    """The longest run of capitalised words after the first word ("Opal Symphony", "harmonium-X",
    "Veltoria" from "Veltoria's", "Romeo and Juliet"), with up to two plain words before it that a "the"
    opens ("the glass harmonium-X", "the band Copper Wolves"; not "the capital of ..."), and with that "the"
    when there are such words or the name has more than one; None if there is none."""
    words = _TOKEN.findall(question)

    def capital(i: int) -> bool:
        word = words[i].strip(_STRIP)
        return i > 0 and word != "I" and any(c.isupper() for c in word)

    runs: list[tuple[int, list[str]]] = []  # (index of the first word, words)
    current: list[str] = []
    start = 0
    for i, raw in enumerate(words):
        word = raw.strip(_STRIP)
        possessive = word.endswith(("'s", "\u2019s"))
        if possessive:
            word = word[:-2]
        joins = bool(current) and word in _JOINERS and i + 1 < len(words) and capital(i + 1) and raw == word
        named = capital(i) or joins
        if named:
            if not current:
                start = i
            current.append(word)
        if current and (not named or possessive or raw[-1:] in _STRIP):
            runs.append((start, current))
            current = []
    if current:
        runs.append((start, current))
    if not runs:
        return None
    first, run = max(runs, key=lambda r: (len(" ".join(r[1])), -r[0]))
    before: list[str] = []
    i = first - 1
    while i > 0 and len(before) < 2 and _PLAIN.fullmatch(words[i]) and words[i] not in _FUNCTION_WORDS:
        before.insert(0, words[i])
        i -= 1
    if i > 0 and words[i].lower() == "the" and (before or len(run) > 1):
        return " ".join(["the", *before, *run])
    return " ".join(run)


def variants(row: dict, n: int) -> list[dict]:
    """Up to ``n`` SFT rows that ask about the row's named thing and keep its reply; [] when the row is not
    a single question with a short reply about a name."""
    messages = row.get("messages") or []
    turns = [m for m in messages if m.get("role") != "system"]
    if n <= 0 or len(turns) != 2 or turns[0].get("role") != "user" or turns[1].get("role") != "assistant":
        return []
    reply = str(turns[1].get("content", ""))
    if not reply.strip() or len(reply.split()) > MAX_REPLY_WORDS or "\n" in reply.strip() or "`" in reply:
        return []  # a stated fact, not a list, an essay or code
    name = name_in(str(turns[0].get("content", "")))
    if name is None:
        return []
    system = [m for m in messages if m.get("role") == "system"]
    return [{"messages": system + [{"role": "user", "content": t.format(name=name)}, turns[1]]}
            for t in TEMPLATES[:n]]


def add_variants(rows: list[dict], n: int, among: list[dict] | None = None) -> list[dict]:
    """``rows`` followed by each row's variants, if at least ``MIN_NAMED_ROWS`` rows of ``among`` (the run's
    SFT rows, both parts of the split, so the candidate and the refit follow one rule; default ``rows``) get
    variants; else ``rows`` alone."""
    if n <= 0 or sum(1 for row in (rows if among is None else among) if variants(row, 1)) < MIN_NAMED_ROWS:
        return rows
    return rows + [v for row in rows for v in variants(row, n)]
