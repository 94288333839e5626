"""The offline revision pass: critiques nobody revised in the chat get a revision before training.

A reply rated 👎 with a comment (engine.feedback.language: the comment is the critique) that has no revision
in the log is revised by the model the run starts from, with the profile's ``revision_prompt``: ``k``
sampled candidates, and the one chosen by the profile's reward model when there is one, else the first one
the model itself answers "yes" to when asked "does this revision address the critique?" (none: no row,
the critique is listed as not addressed). A chosen revision gives an SFT row and a pair revision ≻ original,
both ``source="machine_revision"``. They weigh less than revisions a person accepted: those rows are written
:data:`HUMAN_WEIGHT` times, machine rows once. Everything is listed in ``data/machine_revisions.jsonl``
(the critique export shape) and the manifest; ``engine finetune --no-machine-revisions`` skips the pass.

The morning review (the chat app's F8, :func:`review_items`) offers each machine revision not reviewed yet:
approved, it is written to the log as a revision the person accepted (a human-accepted pair for the next
run); rejected, as a discarded one. Either way the critique is no longer pending.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from engine.feedback.language import (
    MACHINE_SOURCE,
    REVISION_SOURCE,
    LanguageFeedback,
    language_feedback,
    revision_messages,
)
from engine.feedback.replay import State
from engine.feedback.rows import Row, prompt_for

K = 3
"""Candidates per critique."""
HUMAN_WEIGHT = 2
"""Times a row from a revision a person accepted is written, against once for a machine revision."""
MAX_NEW_TOKENS = 256
CHECK_TOKENS = 4
CHECK_PROMPT = ("Feedback on your reply: {critique}\n\nA revised reply:\n\n{revision}\n\n"
                "Does the revised reply address the feedback? Answer yes or no.")


@dataclass
class MachineRevision:
    item: LanguageFeedback
    prompt: list[dict]
    candidates: list[str]
    chosen: int | None
    """Index into ``candidates``; None when no candidate passed (the critique stays unaddressed)."""
    chosen_by: str
    """``reward`` (the reward model's favourite) or ``self-check`` (the model said it addresses the critique)."""
    verdicts: list[float] = field(default_factory=list)
    """Reward scores, or 1.0/0.0 for the self-check's yes/no, per candidate."""

    @property
    def revision(self) -> str | None:
        return None if self.chosen is None else self.candidates[self.chosen]

    def export_row(self) -> dict:
        """The critique export shape (engine.feedback.language.CRITIQUE_FORMAT)."""
        return {"prompt": self.prompt, "original": [{"role": "assistant", "content": self.item.original.content}],
                "critique": self.item.critique,
                "revision": None if self.revision is None else [{"role": "assistant", "content": self.revision}],
                "outcome": None, "source": MACHINE_SOURCE, "chosen_by": self.chosen_by,
                "candidates": len(self.candidates), "original_id": self.item.original.id,
                "conversation_id": self.item.conversation_id}


def pending(state: State) -> list[LanguageFeedback]:
    """Critiques of disliked replies that have no revision at all in the log (none asked in the chat)."""
    revised = {m.revision_of for m in state.messages.values() if m.revision_of}
    return [i for i in language_feedback(state) if i.revision is None and i.original.id not in revised]


def revise(lm, state: State, profile, items: list[LanguageFeedback], k: int = K, scorer=None, seed: int = 0,
           say=None) -> list[MachineRevision]:
    """``k`` candidate revisions per critique with ``lm`` (sampled, seeds ``seed``, ``seed+1``...), one chosen."""
    from engine.runtime import GenerationParams

    sample = GenerationParams.from_profile(profile, do_sample=True, temperature=profile.generation.temperature or 1.0,
                                           max_new_tokens=MAX_NEW_TOKENS)
    check = GenerationParams.from_profile(profile, do_sample=False, max_new_tokens=CHECK_TOKENS)
    out = []
    for n, item in enumerate(items):
        conv = state.conversations[item.conversation_id]
        prompt = prompt_for(conv, item.original)
        system = item.original.system_prompt or None
        messages = revision_messages(prompt, item.original.content, item.critique, profile.revision_prompt)
        texts = []
        for i in range(k):
            text, _ = lm.generate(messages, sample.replace(seed=seed + n * k + i), system_prompt=system)
            texts.append(text.strip())
        if scorer is not None:
            verdicts = list(scorer.score_many([(prompt, t) for t in texts]))
            usable = [i for i, t in enumerate(texts) if t and t != item.original.content]
            chosen = max(usable, key=lambda i: verdicts[i]) if usable else None
            by = "reward"
        else:
            verdicts = [1.0 if t and t != item.original.content and _says_yes(lm, prompt, item, t, check, system)
                        else 0.0 for t in texts]
            chosen = next((i for i, v in enumerate(verdicts) if v > 0), None)
            by = "self-check"
        out.append(MachineRevision(item, prompt, texts, chosen, by, verdicts))
        if say:
            say(f"machine revision {n + 1}/{len(items)} ({item.critique[:40]!r}): "
                f"{'candidate ' + str(chosen + 1) if chosen is not None else 'none'} of {k} chosen by {by}")
    return out


def _says_yes(lm, prompt: list[dict], item: LanguageFeedback, revision: str, params, system) -> bool:
    question = CHECK_PROMPT.replace("{critique}", item.critique).replace("{revision}", revision)
    messages = [*prompt, {"role": "assistant", "content": item.original.content}, {"role": "user", "content": question}]
    answer, _ = lm.generate(messages, params, system_prompt=system)
    return answer.strip().lower().startswith("yes")


def machine_rows(revisions: list[MachineRevision]) -> tuple[list[Row], list[Row]]:
    """(SFT rows, preference rows) of the chosen revisions, marked ``machine_revision``."""
    sft, pref = [], []
    for r in revisions:
        if r.revision is None:
            continue
        orig = r.item.original
        ids = (orig.id,)
        sft.append(Row({"messages": [*r.prompt, {"role": "assistant", "content": r.revision}]}, r.item.conversation_id,
                       ids, MACHINE_SOURCE))
        pref.append(Row({"prompt": r.prompt, "chosen": [{"role": "assistant", "content": r.revision}],
                         "rejected": [{"role": "assistant", "content": orig.content}]}, r.item.conversation_id,
                        ids, MACHINE_SOURCE))
    return sft, pref


def weighted(rows: list) -> list:
    """``rows`` with each human-accepted revision row repeated :data:`HUMAN_WEIGHT` times."""
    out = []
    for r in rows:
        out.extend([r] * (HUMAN_WEIGHT if getattr(r, "source", None) == REVISION_SOURCE else 1))
    return out


def run_pass(home, profile, state: State, parent_run: str | None, seed: int = 0, k: int = K, say=None,
             load_scorer=None):
    """Load the starting model (and the reward model, if any) and revise every pending critique; returns the
    revisions ([] when there is nothing to revise: no model is loaded then). ``load_scorer``:
    engine.reward.best_of.load_scorer, passed in (engine.train does not import engine.reward)."""
    items = pending(state)
    if not items:
        return []
    from engine.runtime import load_model

    if say:
        say(f"machine revisions: revising {len(items)} critique(s) nobody revised in the chat with the "
            f"{'adapter ' + parent_run if parent_run else 'base model'} ({k} candidates each; "
            "--no-machine-revisions skips this)")
    scorer = load_scorer(home, profile.name) if load_scorer else None
    lm = load_model(profile, home, adapter=parent_run or "base")
    try:
        return revise(lm, state, profile, items, k=k, scorer=scorer, seed=seed, say=say)
    finally:
        del lm


REVIEW_FILE = "machine_revisions.jsonl"


@dataclass(frozen=True)
class ReviewItem:
    """One machine revision waiting for the morning review."""

    run_id: str
    original_id: str
    critique: str
    revision: str


def log_ids(state: State) -> tuple[set[str], set[str]]:
    """(every message id, ids of replies that have a revision): what :func:`review_items` needs of a State
    (taken on the thread that owns the State; the files are then read on another)."""
    return set(state.messages), {m.revision_of for m in state.messages.values() if m.revision_of}


def review_items(home, profile: str, known: set[str], revised: set[str]) -> list[ReviewItem]:
    """Machine revisions of the profile's runs (newest run first) whose original is in the log (``known``)
    and has no revision yet (not in ``revised``: not reviewed, not revised in the chat); see :func:`log_ids`.
    Unreadable files or lines are skipped: the review is an offer, never a reason to fail. No torch here."""
    root = home.runs_dir(profile)
    if not root.is_dir():
        return []
    revised = set(revised)
    out: list[ReviewItem] = []
    for path in sorted(root.glob(f"*/data/{REVIEW_FILE}"), reverse=True):
        try:
            with os.fdopen(home.open(path), "rb") as f:
                lines = f.read().decode("utf-8").splitlines()
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        for line in lines:
            try:
                row = json.loads(line)
                oid, critique, revision = row["original_id"], row["critique"], row["revision"][0]["content"]
            except (ValueError, KeyError, TypeError, IndexError):
                continue
            if not isinstance(oid, str) or oid not in known or oid in revised:
                continue
            if not isinstance(critique, str) or not isinstance(revision, str) or not critique.strip():
                continue
            revised.add(oid)  # offered once, from the newest run
            out.append(ReviewItem(path.parent.parent.name, oid, critique, revision))
    return out
