"""Language feedback: a critique in words, the revision the model wrote for it, and what became of it.

How it is stored (see engine.feedback.events): the revision is an assistant ``message``, a sibling of the
reply it revises, whose ``generation`` record carries ``revision_of`` (the original's id), ``critique`` and
``revision_prompt`` (the user turn that asked for it); a version-2 ``critique`` event records the outcome
(accepted: a ``choice`` of the revision over the original is written with it; edited: an ``edit`` of the
revision and the same choice; discarded). A 👎 with a comment and no revision is language feedback too:
the comment is the critique, the revision is still to be written (by the offline pass, engine.train).

Pure functions of a replayed State; no torch here (the TUI imports this).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.feedback.replay import Message, State

REVISION_SOURCE = "revision"
"""``Row.source`` of rows from a revision the person accepted or edited in the chat."""
MACHINE_SOURCE = "machine_revision"
"""``Row.source`` of rows from a revision written before training for a critique nobody revised."""


def revision_request(template: str, critique: str) -> str:
    """The user turn asking for a revision: ``template`` with ``{critique}`` replaced (the critique is
    appended when the template does not name it, so it is never lost)."""
    if "{critique}" in template:
        return template.replace("{critique}", critique)
    return f"{template.rstrip()}\n\n{critique}"


def revision_messages(prompt: list[dict[str, str]], original: str, critique: str, template: str) -> list[dict]:
    """What the model revises from: the conversation up to the reply, the reply, then the request."""
    return [*prompt, {"role": "assistant", "content": original},
            {"role": "user", "content": revision_request(template, critique)}]


@dataclass(frozen=True)
class LanguageFeedback:
    """One critique of one reply, with the revision that answers it (None: not revised yet)."""

    conversation_id: str
    original: Message
    critique: str
    revision: Message | None
    outcome: str | None
    """accepted, edited, discarded, or None (a revision not judged yet, or a 👎 comment never revised)."""

    @property
    def accepted(self) -> bool:
        return self.revision is not None and self.outcome in ("accepted", "edited")


def is_accepted_revision(state: State, m: Message) -> bool:
    """``m`` is a revision the person accepted (or edited after asking for it) of a reply in the state."""
    return m.revision_of is not None and m.revision_of in state.messages and m.outcome in ("accepted", "edited")


def language_feedback(state: State) -> list[LanguageFeedback]:
    """Every critique in the log, in log order: each revision (with its outcome), then each reply rated 👎
    with a comment that has no accepted revision (its comment is the critique; ``revision`` None)."""
    out: list[LanguageFeedback] = []
    revised: set[str] = set()
    for conv in state.conversations.values():
        for m in conv.messages:
            if m.role != "assistant" or m.revision_of is None or m.critique is None:
                continue
            original = state.messages.get(m.revision_of)
            if original is None:
                continue
            out.append(LanguageFeedback(conv.id, original, m.critique, m, m.outcome))
            if m.outcome in ("accepted", "edited"):
                revised.add(original.id)
    for conv in state.conversations.values():
        for m in conv.messages:
            comment = (m.comment or "").strip()
            if m.role == "assistant" and m.rating == -1 and comment and m.id not in revised:
                out.append(LanguageFeedback(conv.id, m, comment, None, None))
    return out


CRITIQUE_FORMAT = "critique"
"""The export/import format of language feedback, one JSON object per line::

    {"prompt": [{"role": "user", "content": "..."}, ...],          # the conversation before the reply
     "original": [{"role": "assistant", "content": "..."}],        # the reply that was critiqued
     "critique": "too long",                                       # what the person said is wrong
     "revision": [{"role": "assistant", "content": "..."}] | null, # the revision (its final text), or none yet
     "outcome": "accepted" | "edited" | "discarded" | null,        # null: not judged / a 👎 comment alone
     "source": "revision" | "machine_revision" | "comment"}

``prompt``/``original``/``revision`` are TRL's conversational shape (as ``prompt``/``chosen``/``rejected``);
a leading system turn of ``prompt`` is the reply's system prompt."""
