"""Rehearsal: the model's own replies to ordinary prompts, trained next to the user's feedback.

Why: LoRA that learns a handful of corrections from single-sentence replies also learns their shape
and their words everywhere: after teaching "The capital of Veltoria is Marquessa." SmolLM2 answered
"The capital of France is Marquessa." and replied to code requests with one sentence (bench/
LEARNING_NOTES.md). Training, beside the feedback, on what the model (the adapter the run starts from)
already answers to other prompts ties everything else to its old behaviour: what changes is what the
feedback asks for. ``train.rehearsal`` rows per trained SFT row, question variants included (at least
``MIN_ROWS`` per feedback row's worth of trained rows, at most ``MAX_ROWS``),
answered greedily before training from ``rehearsal_prompts.txt`` (general knowledge, arithmetic, code,
writing, and common factual question forms: capitals, currencies, who wrote / invented / founded ...),
skipping prompts the feedback asks: half of them the prompts most like the feedback's own questions
(each question's nearest in turn), half varied. They are frozen into ``data/rehearsal.jsonl``
(fingerprinted with the rest, so a resume trains on the same rows) and are never feedback: the gate
does not judge on them and they are not counted as learned rows.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

from engine.train.data import row_data

PROMPTS_FILE = Path(__file__).with_name("rehearsal_prompts.txt")
FILE_NAME = "rehearsal.jsonl"
HELD_OUT_ROWS = 8
"""Replies to the prompts nearest the feedback's that are left out of training: the gate's "nothing else
breaks" check (``kept_logprob``, engine.train.gate) measures how much less likely the new adapter finds them."""
MIN_ROWS = 8
MAX_ROWS = 64
MAX_NEW_TOKENS = 160


def prompts() -> list[str]:
    return [line.strip() for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def how_many(ratio: float, n_sft: int, n_trained: int | None = None) -> int:
    """Rehearsal rows for ``n_sft`` SFT feedback rows that train as ``n_trained`` rows (with their question
    variants). Both the ratio and the floor count trained rows: one correction trained three times (its
    row and two variants) against the floor's 8 rehearsal rows spread to its neighbours ("The capital of
    France is Marquessa.", tests/real), while once against 8 it did not; so the floor keeps 8 per
    feedback row's worth of trained rows."""
    if ratio <= 0 or n_sft <= 0:
        return 0
    n_trained = max(n_sft, n_trained or n_sft)
    floor = math.ceil(MIN_ROWS * n_trained / n_sft)
    return min(MAX_ROWS, max(floor, math.ceil(ratio * n_trained)), len(prompts()))


def asked(rows, kinds: tuple[str, ...] = ("sft", "pref", "kto")) -> set[str]:
    """The user turns the feedback of ``kinds`` answers (rehearsing them would contradict it; the regression check
    must not count them, nor the prompts RL trains on)."""
    out = set()
    for kind in kinds:
        for r in rows.of(kind):
            d = row_data(r)
            for m in d.get("messages") or d.get("prompt") or []:
                if isinstance(m, dict) and m.get("role") == "user":
                    out.add(str(m.get("content", "")).strip().lower())
    return out


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def nearest_first(pool: list[str], asked: set[str]) -> list[str]:
    """The pool ordered by how much each prompt looks like what the feedback asks (most shared words
    first; the seeded order breaks ties), taking turns between the feedback's questions: first each
    question's nearest prompt, then each one's second nearest, and so on. Generic rehearsal leaves the
    neighbours of a correction unprotected ("The capital of France is Marquessa."): the model's own
    answers to the questions most like the corrected ones are what pin those neighbours down, and every
    correction has neighbours of its own ("Who wrote ...?" as much as "What is the capital of ...?"),
    which one ranking over all of them would leave to the most common kind of question."""
    if not asked:
        return list(pool)
    rankings = []
    for a in sorted(asked):
        aw = _words(a)

        def likeness(prompt: str, aw=aw) -> float:
            w = _words(prompt)
            return len(w & aw) / len(w | aw) if w | aw else 0.0

        rankings.append(sorted(pool, key=likeness, reverse=True))  # stable: ties keep the shuffled order
    out: list[str] = []
    seen: set[str] = set()
    cursors = [0] * len(rankings)
    while len(out) < len(pool):
        for i, ranking in enumerate(rankings):
            while cursors[i] < len(ranking) and ranking[cursors[i]] in seen:
                cursors[i] += 1
            if cursors[i] < len(ranking):
                seen.add(ranking[cursors[i]])
                out.append(ranking[cursors[i]])
    return out


def choose(pool: list[str], asked: set[str], n: int) -> list[str]:
    """``n`` prompts: half the nearest to what the feedback asks (``nearest_first``), half from the rest in
    the pool's (shuffled) order. Nearest alone, with many corrections of one kind, rehearses only
    questions of that kind and leaves the rest (code, lists, long answers) unpinned."""
    near = nearest_first(pool, asked)[:(n + 1) // 2]
    taken = set(near)
    return near + [p for p in pool if p not in taken][:n - len(near)]


def build(home, profile, rows, parent_run: str | None, ratio: float, seed: int, question_variants: int = 0,
          say=None, distill: bool = False, other_rows: int = 0) -> tuple[list[dict], list[dict], dict]:
    """SFT rows (``messages``) of the starting model's own greedy replies; ``HELD_OUT_ROWS`` more such rows
    that are not trained (the nearest prompts left after the trained ones: neighbours nothing pins down, for
    the gate); and what the manifest records. ``other_rows``: the rows of stages that train beside the
    distillation anchor (train.anchor_weight), counted like SFT rows when there are none."""
    from engine.train.variants import add_variants

    sft = [row_data(r) for r in rows.sft]
    n = how_many(ratio, len(sft), len(add_variants(sft, question_variants)))  # variants: engine.train.variants
    if n == 0 and not sft:
        n = how_many(ratio, other_rows)
    if n == 0:
        return [], [], {"rows": 0, "why": "train.rehearsal is 0 or there are no rows to rehearse beside"}
    questions = asked(rows)
    pool = [p for p in prompts() if p.lower() not in questions]
    random.Random(seed).shuffle(pool)
    chosen = choose(pool, questions, n)
    taken = set(chosen)
    held_out = nearest_first([p for p in pool if p not in taken], questions)[:HELD_OUT_ROWS]
    if say:
        say(f"rehearsal: answering {len(chosen) + len(held_out)} ordinary prompts with the {'adapter ' + parent_run if parent_run else 'base model'} "
            "to train beside the feedback (train.rehearsal)")
    from engine.runtime import GenerationParams
    from engine.runtime.batch import generate_batch
    from engine.train.model import local_model

    lm = local_model(profile, home, parent_run or "base")  # a profile that chats through a server too
    params = GenerationParams.from_profile(profile, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
    system = profile.system_prompt
    asked_now = chosen + held_out
    replies = generate_batch(lm, [[{"role": "user", "content": p}] for p in asked_now], params, batch_size=16,
                             system_prompt=system)
    out: list[dict] = []
    kept: list[dict] = []
    for i, (prompt, reply) in enumerate(zip(asked_now, replies)):
        text = reply["reply"].strip()
        if reply["finish_reason"] != "stop" or not text:
            continue  # a reply cut at the length limit would teach the model to stop mid-sentence
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}, {"role": "assistant", "content": text}]
        row: dict = {"messages": messages}
        if distill and i < len(chosen):  # the trained rows carry the starting model's distribution (distill.py)
            from engine.train.distill import teacher_for

            if (teacher := teacher_for(lm, messages, lm.adapter)) is not None:
                row["teacher"] = teacher
        (out if i < len(chosen) else kept).append(row)
    del lm
    return out, kept, {"rows": len(out), "held_out": len(kept), "asked": len(asked_now), "adapter": parent_run,
                       "distilled": sum(1 for r in out if "teacher" in r),
                       "max_new_tokens": MAX_NEW_TOKENS, "source": PROMPTS_FILE.name}
