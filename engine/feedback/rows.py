"""Training rows in TRL's conversational dataset formats, as pure functions of a replayed State.

The rules (a rating or a choice judges the reply as it was generated; an edit supplies better text):

SFT (``messages``), one row per assistant reply that is a positive example:
  - edited replies, with the edited text (even if the original was rated down: the edit is the fix);
  - replies rated +1;
  - replies picked in a choice (regenerate, compare, best_of, import), unless rated -1.

Preference (``prompt``, ``chosen``, ``rejected``), identical pairs deduplicated:
  - edit over original (edited text chosen, original rejected);
  - the latest choice of a sibling group: the chosen reply over each other candidate (originals);
  - a reply rated +1 over each sibling rated -1 (same parent).

Unpaired (``prompt``, ``completion``, ``label``), identical rows deduplicated:
  - every reply rated +1 (True) or -1 (False);
  - an edited reply: the edited text True, and its original False unless it was rated +1;
  - a picked reply that is not rated: True. The other candidates of a choice are labelled only by
    their own rating (a regenerate or compare loser was not necessarily bad, just less good).

Language feedback (engine.feedback.language): a revision the person accepted (or edited) after a critique is
picked by its choice, so it is an SFT row like any pick, and the choice's pair is the revision's final text
(the edit, when edited) over the original; both rows are marked ``source="revision"``.

The prompt of a row is the path from the root to the reply's parent: user and assistant turns with
their final (edited) text, any system messages of the tree as they are, preceded by
``{"role": "system", "content": <generation.system_prompt>}`` when the reply's generation record has
a non-empty system prompt. Pairs with identical chosen/rejected texts are dropped. A reply with no
user turn before it (e.g. an opening greeting) gives no rows: there is nothing it answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.feedback.language import MACHINE_SOURCE, REVISION_SOURCE, is_accepted_revision, language_feedback
from engine.feedback.replay import Conversation, Message, State

FORMATS = ("sft", "preference", "unpaired")


@dataclass(frozen=True)
class Row:
    """``data`` is exactly the TRL row; the rest is provenance (never written to TRL files)."""

    data: dict[str, Any]
    conversation_id: str
    message_ids: tuple[str, ...]
    """The replies this row judges (for preference rows: chosen first, then rejected)."""
    source: str | None = None
    """Where the lesson came from when it is not an ordinary judgement: ``revision`` (a revision accepted in
    the chat after a critique) or ``machine_revision`` (written before training; engine.train.revise)."""

    def key(self) -> str:
        return json.dumps(self.data, sort_keys=True, ensure_ascii=False)


def _turn(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def prompt_for(conv: Conversation, reply: Message) -> list[dict[str, str]]:
    """The conversation up to (not including) ``reply``, with the reply's system prompt first."""
    path = conv.path_to(reply.id)[:-1]
    out = []
    if reply.system_prompt:
        out.append(_turn("system", reply.system_prompt))
    out.extend(_turn(m.role, m.final_text) for m in path)
    return out


def _has_user_turn(conv: Conversation, reply: Message) -> bool:
    return any(m.role == "user" for m in conv.path_to(reply.id))


def _replies(state: State):
    """Assistant replies with at least one user turn before them (a greeting is not an example)."""
    for conv in state.conversations.values():
        for m in conv.messages:
            if m.role == "assistant" and _has_user_turn(conv, m):
                yield conv, m


def _is_positive(m: Message) -> bool:
    return m.edited is not None or m.rating == 1 or (m.picked and m.rating != -1)


def sft_rows(state: State) -> list[Row]:
    rows = []
    for conv, m in _replies(state):
        if _is_positive(m):
            data = {"messages": prompt_for(conv, m) + [_turn("assistant", m.final_text)]}
            rows.append(Row(data, conv.id, (m.id,), REVISION_SOURCE if is_accepted_revision(state, m) else None))
    return rows


def _pair(conv: Conversation, chosen: Message, chosen_text: str, rejected: Message, rejected_text: str,
          source: str | None = None) -> Row | None:
    if chosen_text == rejected_text:
        return None
    data = {
        "prompt": prompt_for(conv, chosen),
        "chosen": [_turn("assistant", chosen_text)],
        "rejected": [_turn("assistant", rejected_text)],
    }
    ids = (chosen.id,) if chosen.id == rejected.id else (chosen.id, rejected.id)
    return Row(data, conv.id, ids, source)


def preference_rows(state: State) -> list[Row]:
    choices = {(c.conversation_id, c.parent_id): c for c in state.choices}
    candidates: list[Row | None] = []
    for conv in state.conversations.values():
        groups: dict[str | None, list[Message]] = {}
        for m in conv.messages:
            if m.role != "assistant" or not _has_user_turn(conv, m):
                continue
            groups.setdefault(m.parent_id, []).append(m)
            if m.edited is not None:
                candidates.append(_pair(conv, m, m.edited, m, m.content))
        for parent_id, siblings in groups.items():
            choice = choices.get((conv.id, parent_id))
            if choice is not None:
                chosen = state.messages[choice.chosen_id]
                for cid in choice.candidates:
                    if cid != chosen.id:
                        other = state.messages[cid]
                        if chosen.revision_of == other.id and is_accepted_revision(state, chosen):
                            candidates.append(_pair(conv, chosen, chosen.final_text, other, other.content,
                                                    REVISION_SOURCE))
                        else:
                            candidates.append(_pair(conv, chosen, chosen.content, other, other.content))
            liked = [m for m in siblings if m.rating == 1]
            disliked = [m for m in siblings if m.rating == -1]
            for good in liked:
                for bad in disliked:
                    candidates.append(_pair(conv, good, good.content, bad, bad.content))
    return _dedupe(candidates)


def unpaired_rows(state: State) -> list[Row]:
    candidates: list[Row | None] = []
    for conv, m in _replies(state):
        prompt = prompt_for(conv, m)

        def row(text: str, label: bool, prompt=prompt, conv=conv, m=m) -> Row:
            return Row({"prompt": prompt, "completion": [_turn("assistant", text)], "label": label}, conv.id, (m.id,))

        if m.edited is not None:
            candidates.append(row(m.edited, True))
            candidates.append(row(m.content, m.rating == 1))
        elif m.rating == 1 or (m.picked and m.rating == 0):
            candidates.append(row(m.content, True))
        elif m.rating == -1:
            candidates.append(row(m.content, False))
    return _dedupe(candidates)


def prompt_rows(state: State) -> list[Row]:
    """Each prompt a reply answered (``{"prompt": messages}``, the conversation up to the reply), once: the
    person's own questions, judged or not, for RL to sample new replies to."""
    return _dedupe([Row({"prompt": prompt_for(conv, m)}, conv.id, (m.id,)) for conv, m in _replies(state)])


def _dedupe(rows: list[Row | None]) -> list[Row]:
    seen: set[str] = set()
    out = []
    for r in rows:
        if r is None:
            continue
        k = r.key()
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def rows_for(state: State, fmt: str) -> list[Row]:
    """Rows of one format by name: ``sft``, ``preference`` or ``unpaired``."""
    try:
        build = {"sft": sft_rows, "preference": preference_rows, "unpaired": unpaired_rows}[fmt]
    except KeyError:
        from engine.errors import UserError

        raise UserError(f"unknown row format {fmt!r}: use sft, preference or unpaired.") from None
    from engine.feedback.gc_pause import gc_paused

    with gc_paused():
        return build(state)


def critique_rows(state: State) -> list[Row]:
    """Every critique (engine.feedback.language.language_feedback) as a row of its export format
    (engine.feedback.language.CRITIQUE_FORMAT)."""
    out = []
    for item in language_feedback(state):
        conv = state.conversations[item.conversation_id]
        rev = item.revision
        if rev is None:
            source = "comment"
        else:
            machine = (rev.generation or {}).get("machine_revision") and item.outcome not in ("accepted", "edited")
            source = MACHINE_SOURCE if machine else REVISION_SOURCE  # an approved machine revision is the person's
        data = {"prompt": prompt_for(conv, item.original),
                "original": [{"role": "assistant", "content": item.original.content}],
                "critique": item.critique,
                "revision": None if rev is None else [{"role": "assistant", "content": rev.final_text}],
                "outcome": item.outcome, "source": source}
        ids = (item.original.id,) if rev is None else (rev.id, item.original.id)
        out.append(Row(data, item.conversation_id, ids, None if rev is None else source))
    return out
