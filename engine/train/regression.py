"""The gate's "nothing else breaks" check: ordinary questions the adapter in use answers correctly must still be
answered correctly by the new adapter.

Why this statistic. The learning bench's controls broke silently (20-29 of 30 kept) while every other check
passed: log-probs of held-out feedback, length, repetition, KL, the reward model's win rate all measure the
taught behaviour or the surface of the replies, not whether "What is the capital of Japan?" is still Tokyo.
``kept_logprob`` (the starting model's own replies' likelihood) moves with any change of style, so a style
that was asked for looks like damage. What a person loses is an answer, so the check counts answers: each
prompt of ``regression_prompts.tsv`` has a checkable answer (a word, a number, a code needle), the adapter in
use answers them greedily before training (``build``, frozen into ``data/regression.jsonl``), and after
training the candidate answers the same prompts (``check``). A change is a prompt the adapter in use answered right
up front (``Probe.knows``) and whose answer is nowhere in the candidate's reply; a shorter or reworded right
answer is no change, and a reply cut at the token limit before its answer is asked again longer
(``candidate_replies``): an answer reached by a longer way is no change either. The run is refused when more
than ``train.gate_max_changed`` of the known prompts changed (at least one change is always allowed: greedy
decoding of a slightly different model flips a borderline answer now and then), or when the candidate
collapsed (empty or one-word replies where the adapter in use wrote sentences: the demo model after a DPO
that reached loss 0).

Why not a log-prob per prompt: the adapter in use's reply up to its answer ("The capital of Peru is Lima"), scored
teacher-forced, was measured on two runs (bench/LEARNING_NOTES.md): the prompts whose answer the candidate lost
were as likely or likelier under it than before (median -0.02 to -0.06 nats/token, the same as the kept ones). The
damage is in the way a free-running reply sets out ("To add 3 and 4, you simply ..."), which only answering sees.

The set: half the prompts most like what the run teaches (each taught question's nearest in turn, as
rehearsal chooses: what a correction breaks first is its look-alikes), half a fixed general part in the file's
order; never a prompt the feedback asks, disjoint from the rehearsal prompts (those are trained) and from
bench/learning_data.py's controls (those measure the check). The answers are English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("regression_prompts.tsv")
FILE_NAME = "regression.jsonl"
MAX_NEW_TOKENS = 64
"""Facts and numbers come in the first sentence, code in the first lines (the bench's controls use 64 too)."""
LATE_TOKENS = 192
"""A candidate reply cut at ``MAX_NEW_TOKENS`` before it gave a known answer is asked again this long
(``candidate_replies``): a reply that gets there later kept the answer (a longer way to it is a change of style),
one that ends without it, or is cut again, lost it. On SmolLM2 a third to all of the changes counted in runs
that kept every bench control were such cut replies ("Who wrote The Odyssey?" -> a 64-token preamble), against
none to one in the critique runs that broke three."""
BATCH = 16
SHOWN = 2
"""Changed prompts named in the refusal."""
KNOWN_WORDS = 20


@dataclass(frozen=True)
class Probe:
    kind: str
    """``fact`` (any answer as a whole word, plural allowed), ``number`` (not part of another number) or ``code``
    (``def`` and any answer as text)."""
    prompt: str
    answers: tuple[str, ...]

    def passes(self, reply: str) -> bool:
        if self.kind == "code":
            return "def " in reply and any(a in reply for a in self.answers)
        text = reply.replace(",", "") if self.kind == "number" else reply
        return any(_pattern(self.kind, a).search(text) for a in self._accepted())

    def _accepted(self) -> tuple[str, ...]:
        """The answers, and for a small number its word too: "A hexagon is a polygon with six sides." keeps the answer
        (a critique run's shorter replies spelled out 6 and 8 and were counted as changes)."""
        if self.kind != "number":
            return self.answers
        words = tuple(NUMBER_WORDS[int(a)] for a in self.answers if a.isdigit() and int(a) < len(NUMBER_WORDS))
        return self.answers + words

    def knows(self, reply: str) -> bool:
        """The reference counts as knowing the answer only when it says it up front (in its first ``KNOWN_WORDS``
        words; code: anywhere): an answer found late in a ramble ("Belgium is a country in Europe ... It is
        bordered by ... Brussels") is one any small change moves past the 64 tokens, and counted as a change
        it is noise, not damage. The candidate may say it anywhere in its reply."""
        if self.kind == "code":
            return self.passes(reply)
        return self.passes(" ".join(reply.split()[:KNOWN_WORDS]))


NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")


def _pattern(kind: str, answer: str) -> re.Pattern:
    if kind == "number" and answer.isdigit():
        return re.compile(rf"(?<![\d.]){answer}(?!\d|\.\d)")
    return re.compile(rf"(?<!\w){re.escape(answer)}(?:e?s)?(?!\w)", re.IGNORECASE)


def pool() -> list[Probe]:
    out = []
    for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, prompt, answers = line.split("\t")
        out.append(Probe(kind, prompt, tuple(answers.split("|"))))
    return out


def choose(probes: list[Probe], asked: set[str], n: int) -> list[Probe]:
    """``n`` probes none of the feedback asks: half the nearest to what it asks, then the file's order."""
    from engine.train.rehearsal import nearest_first

    usable = {p.prompt: p for p in probes if p.prompt.strip().lower() not in asked}
    near = nearest_first(list(usable), asked)[:n // 2] if asked else []
    taken = set(near)
    chosen = near + [p for p in usable if p not in taken][:n - len(near)]
    return [usable[p] for p in chosen]


def is_collapsed(probe: Probe, reply: str) -> bool:
    """Empty or a single word that is not the answer ("Athens." is an answer; "+" is not)."""
    return len(reply.split()) <= 1 and not probe.passes(reply)


def answer(lm, probes: list[Probe], system: str | None, stop=None, say=None,
           max_new_tokens: int = MAX_NEW_TOKENS) -> list[dict] | None:
    """Greedy replies of ``lm``'s active adapter, a batch at a time (``reply``, stripped, and ``finish_reason``:
    ``stop`` or ``length``); None when ``stop`` was requested."""
    from engine.runtime import GenerationParams
    from engine.runtime.batch import generate_batch

    params = GenerationParams.from_profile(lm.profile, do_sample=False, max_new_tokens=max_new_tokens)
    out: list[dict] = []
    for start in range(0, len(probes), BATCH):
        if stop is not None and stop.requested:
            return None
        chats = [[{"role": "user", "content": p.prompt}] for p in probes[start:start + BATCH]]
        out += [{"reply": r["reply"].strip(), "finish_reason": r["finish_reason"]}
                for r in generate_batch(lm, chats, params, batch_size=BATCH, system_prompt=system)]
        if say:
            say(f"  regression check: {len(out)} of {len(probes)} prompts answered")
    return out


def candidate_replies(lm, rows: list[dict], system: str | None, stop=None, say=None) -> list[dict] | None:
    """The candidate's replies to the frozen rows: ``answer``, then each known prompt whose reply was cut at
    ``MAX_NEW_TOKENS`` without the answer asked again with ``LATE_TOKENS`` (marked ``late``); None on ``stop``."""
    probes = [Probe(r["kind"], r["prompt"], tuple(r["answers"])) for r in rows]
    replies = answer(lm, probes, system, stop=stop, say=say)
    if replies is None:
        return None
    cut = [i for i, (row, probe, reply) in enumerate(zip(rows, probes, replies))
           if row["ok"] and reply["finish_reason"] == "length" and not probe.passes(reply["reply"])]
    if cut:
        if say:
            say(f"  regression check: {len(cut)} replies were cut before an answer; asking them again with "
                f"{LATE_TOKENS} tokens")
        again = answer(lm, [probes[i] for i in cut], system, stop=stop, max_new_tokens=LATE_TOKENS)
        if again is None:
            return None
        for i, reply in zip(cut, again):
            replies[i] = {**reply, "late": True}
    return replies


def build(home, profile, asked: set[str], reference: str | None, n: int, say=None) -> tuple[list[dict], dict]:
    """The regression rows (``prompt``, ``kind``, ``answers``, the reference's ``reply`` and whether it is ``ok``)
    answered by ``reference`` (a run id, or None: the base model), and what the manifest records."""
    if n <= 0:
        return [], {"prompts": 0, "why": "train.gate_regression_prompts is 0"}
    probes = choose(pool(), asked, n)
    who = f"adapter {reference}" if reference else "the base model"
    if say:
        say(f"regression check: {who} answers {len(probes)} ordinary questions the feedback does not ask "
            "(train.gate_regression_prompts)")
    from engine.train.model import local_model

    lm = local_model(profile, home, reference or "base")
    records = answer(lm, probes, profile.system_prompt, say=say)
    assert records is not None
    replies = [r["reply"] for r in records]
    rows = [{"prompt": p.prompt, "kind": p.kind, "answers": list(p.answers), "reply": r, "ok": p.knows(r)}
            for p, r in zip(probes, replies)]
    del lm
    known = sum(1 for r in rows if r["ok"])
    return rows, {"prompts": len(rows), "known": known, "reference": reference, "max_new_tokens": MAX_NEW_TOKENS,
                  "source": PROMPTS_FILE.name}


def check(rows: list[dict], replies: list[str], max_changed: float, late: int = 0) -> dict:
    """Compare the candidate's ``replies`` with the reference rows: the changed prompts, the allowance, the verdict
    and its sentence; ``late`` (how many replies ``candidate_replies`` asked again) is recorded as ``asked_again``."""
    probes = [Probe(r["kind"], r["prompt"], tuple(r["answers"])) for r in rows]
    changed = [{"prompt": r["prompt"], "was": r["reply"], "now": reply}
               for r, p, reply in zip(rows, probes, replies) if r["ok"] and not p.passes(reply)]
    known = sum(1 for r in rows if r["ok"])
    allowed = max(1, int(max_changed * known))
    collapsed_ref = sum(is_collapsed(p, r["reply"]) for p, r in zip(probes, rows))
    collapsed = [reply for p, reply in zip(probes, replies) if is_collapsed(p, reply)]
    collapsed_new = len(collapsed)
    collapse_limit = collapsed_ref + max(2, len(rows) // 4)
    result = {"prompts": len(rows), "known": known, "changed": len(changed), "allowed": allowed,
              "max_changed": max_changed, "asked_again": late, "collapsed": collapsed_new, "collapsed_reference": collapsed_ref,
              "examples": changed[:8], "replies": list(replies)}  # every reply: gate.json keeps them for audits
    if collapsed_new > collapse_limit:
        sample = collapsed[0]
        result["ok"] = False
        result["reason"] = (f"regression check: {collapsed_new} of {len(rows)} ordinary questions get an empty or "
                            f"one-word reply (the adapter in use: {collapsed_ref}), e.g. {sample!r}: the adapter "
                            "collapsed; not promoted.")
    elif known and len(changed) > allowed:
        shown = "; ".join(f"{c['prompt']!r} -> {_short(c['now'])!r} (was {_short(c['was'])!r})"
                          for c in changed[:SHOWN])
        result["ok"] = False
        result["reason"] = (f"regression check: {len(changed)} of {known} ordinary questions the adapter in use "
                            f"answers correctly changed (at most {allowed} allowed, train.gate_max_changed), e.g. "
                            f"{shown}; not promoted.")
    else:
        result["ok"] = True
        result["reason"] = (f"regression check: {len(changed)} of {known} known answers changed (at most {allowed})"
                            if known else "regression check: the adapter in use answers none of the regression "
                                          "questions correctly, so only collapse is checked")
    return result


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
