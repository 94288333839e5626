"""The person's view of one profile's feedback log: which conversation is open, which sibling is shown.

No Textual here, so it is easy to test and to reason about. Every action that judges a reply is
appended to the log (``engine.feedback.FeedbackLog``) before the method returns. The log is replayed
once at start; after that each event this session writes is applied to the in-memory state with
``State.apply``, the function replay itself uses per event (a full replay per keypress costs about a
second at 15,000 events). The restart test checks that the screen after a replay is identical.

Which sibling is shown at a branch: the one the person last chose to show in this session, else the
picked one, else the best-scored one (best-of-n replies carry ``generation["reward_score"]``), else
the newest (a regeneration shows up at once).
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.errors import UserError
from engine.feedback import FeedbackLog, Message
from engine.feedback.language import revision_messages, revision_request
from engine.home import Home


class NotSaved(UserError):
    """An event could not be appended to the log: nothing of it was applied to the session's state."""


class ChatSession:
    def __init__(self, home: Home, profile: str) -> None:
        self.home = home
        self.profile = profile
        self.log = FeedbackLog(home, profile)
        self.served: set[str] = set()
        self.reload()
        self.shown: dict[tuple[str, str | None], str] = {}  # (conversation, parent id) -> child id
        own = [c for c in self.state.conversations if c not in self.served]
        # the person's own latest conversation (one a program held through `engine serve` is not theirs)
        self.conversation_id: str = own[-1] if own else uuid.uuid4().hex

    # ---- reading -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Replay the whole log (picks up what other processes wrote)."""
        from engine.feedback.replay import replay

        result = self.log.read()
        self.state = replay(result)
        self.served = served_conversations(result.events)

    def _apply(self, ev: dict) -> None:
        """Apply one event this session just appended, by the replay's own rules (State.apply)."""
        self.state.apply(ev)

    @property
    def conversation(self):
        """The open conversation, or None while it has no message yet."""
        return self.state.conversations.get(self.conversation_id)

    def conversations(self) -> list:
        """Conversations in creation order (the new, still empty one is not included)."""
        return list(self.state.conversations.values())

    def message(self, message_id: str):
        return self.state.messages[message_id]

    def siblings(self, message_id: str) -> list:
        msg = self.message(message_id)
        conv = self.state.conversations[msg.conversation_id]
        return list(conv.children(msg.parent_id))

    def _shown_child(self, conv, parent_id: str | None):
        children = list(conv.children(parent_id))
        if not children:
            return None
        wanted = self.shown.get((conv.id, parent_id))
        for child in children:
            if child.id == wanted:
                return child
        picked = [c for c in children if c.picked]
        if picked:
            return picked[-1]
        latest_follow_up = {c.id: max(ts) for c in children if (ts := [m.ts for m in conv.children(c.id)])}
        continued = [c for c in children if c.id in latest_follow_up]
        if continued:  # the branch the person went on with (the newest such)
            return max(continued, key=lambda c: latest_follow_up[c.id])
        kept = [c for c in children if c.outcome != "discarded"] or children  # a discarded revision: only if alone
        scored = [c for c in kept if (c.generation or {}).get("reward_score") is not None]
        if scored:  # best-of-n candidates: the reward model's favourite first
            return max(scored, key=lambda c: float(c.generation["reward_score"]))
        return kept[-1]

    def path(self, conversation_id: str | None = None) -> list:
        """The messages on screen (of ``conversation_id``, default the open one), root first, following
        the shown sibling at every branch."""
        conv = self.state.conversations.get(conversation_id or self.conversation_id)
        out: list = []
        if conv is None:
            return out
        parent = None
        while (child := self._shown_child(conv, parent)) is not None:
            out.append(child)
            parent = child.id
        return out

    def prompt_for(self, parent_id: str) -> list[dict]:
        """The chat messages a reply to ``parent_id`` is generated from (edited text where edited)."""
        msg = self.message(parent_id)
        conv = self.state.conversations[msg.conversation_id]
        return [{"role": m.role, "content": m.final_text} for m in conv.path_to(parent_id)]

    # ---- navigation ----------------------------------------------------------------------------
    def new_conversation(self) -> None:
        self.conversation_id = uuid.uuid4().hex

    def open(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id

    def show(self, message_id: str) -> None:
        msg = self.message(message_id)
        self.shown[(msg.conversation_id, msg.parent_id)] = msg.id

    def step_sibling(self, message_id: str, delta: int) -> str:
        """Show the previous/next sibling of ``message_id`` (wrapping) and return its id."""
        sibs = self.siblings(message_id)
        ids = [s.id for s in sibs]
        new = ids[(ids.index(message_id) + delta) % len(ids)]
        self.show(new)
        return new

    # ---- writing (each one event, appended at once) ------------------------------------------------
    def _save(self, append, *args, **kwargs) -> dict:
        """Append one event; a log that cannot be written raises NotSaved naming the file (the event is
        then not applied, so the screen never shows it as saved; the log's earlier lines are untouched)."""
        try:
            return append(*args, **kwargs)
        except (OSError, UserError) as exc:
            reason = str(exc) if isinstance(exc, UserError) else \
                f"cannot write the feedback log {self.log.path}: {exc.strerror or exc}."
            raise NotSaved(f"Not saved: {reason} Everything saved before is untouched.") from None

    def unanswered(self, message) -> bool:
        """A user message with no reply under it (its reply failed, or the app stopped before one came)."""
        conv = self.state.conversations.get(message.conversation_id)
        return message.role == "user" and conv is not None and not conv.children(message.id)

    def add_user(self, text: str, conversation_id: str | None = None):
        """A user message at the end of the conversation's shown path. When the path ends with a user
        message nobody answered, the new one takes its place (its sibling, shown instead), so the
        conversation never holds two user turns in a row."""
        conversation_id = conversation_id or self.conversation_id
        path = self.path(conversation_id)
        parent = path[-1].id if path else None
        if path and self.unanswered(path[-1]):
            parent = path[-1].parent_id
        ev = self._save(self.log.add_message, conversation_id, parent, "user", text)
        self._apply(ev)
        self.show(ev["id"])
        return self.message(ev["id"])

    def add_reply(self, parent_id: str, text: str, record: dict[str, Any], show: bool = True):
        conv_id = self.message(parent_id).conversation_id
        ev = self._save(self.log.add_message, conv_id, parent_id, "assistant", text, generation=record)
        self._apply(ev)
        if show:
            self.show(ev["id"])
        return self.message(ev["id"])

    def toggle_rating(self, message_id: str, value: int) -> int:
        """Thumbs up/down; pressing the same thumb again clears it (value 0). Returns the new value."""
        msg = self.message(message_id)
        new = 0 if msg.rating == value else value
        self._apply(self._save(self.log.rate, message_id, new))
        return new

    def rate(self, message_id: str, value: int, tags=(), comment: str | None = None) -> None:
        self._apply(self._save(self.log.rate, message_id, value, tags=list(tags), comment=comment))

    def edit(self, message_id: str, content: str) -> None:
        self._apply(self._save(self.log.edit, message_id, content))

    def pick(self, message_id: str, kind: str | None = None, sources: dict[str, str] | None = None) -> None:
        """A ``choice`` among all assistant siblings. ``kind`` None: ``best_of`` when any of them came from
        best-of-n (``generation.best_of`` > 1), else ``regenerate``."""
        sibs = [s for s in self.siblings(message_id) if s.role == "assistant"]
        candidates = [s.id for s in sibs]
        if kind is None:
            kind = "best_of" if any(_best_of_size(s) > 1 for s in sibs) else "regenerate"
        self._apply(self._save(self.log.choose, message_id, candidates, kind, sources=sources))
        self.show(message_id)

    def choose_among(self, chosen_id: str, candidates: list[str], kind: str, sources: dict[str, str]) -> None:
        self._apply(self._save(self.log.choose, chosen_id, candidates, kind, sources=sources))
        self.show(chosen_id)

    def rename(self, title: str) -> None:
        self._apply(self._save(self.log.rename, self.conversation_id, title))

    # ---- language feedback (engine.feedback.language) -------------------------------------------------
    def revision_prompt_for(self, original_id: str, critique: str, template: str) -> list[dict]:
        """The chat messages a revision of reply ``original_id`` after ``critique`` is generated from."""
        original = self.message(original_id)
        return revision_messages(self.prompt_for(original.parent_id), original.final_text, critique, template)

    def add_revision(self, original_id: str, text: str, record: dict[str, Any], critique: str,
                     template: str) -> Message:
        """The revision, a sibling of the original, shown at once; its record names the original, the
        critique and the revision prompt used."""
        record = {**record, "revision_of": original_id, "critique": critique,
                  "revision_prompt": revision_request(template, critique)}
        return self.add_reply(self.message(original_id).parent_id, text, record)

    def resolve_revision(self, revision_id: str, outcome: str, text: str | None = None) -> None:
        """accepted: a choice of the revision over the original, then the critique event; edited: the edit
        (``text``) first, then the same; discarded: the critique event, and the original is shown again."""
        rev = self.message(revision_id)
        original = self.message(rev.revision_of)
        if outcome == "edited":
            self.edit(rev.id, text if text is not None else rev.final_text)
        if outcome in ("accepted", "edited"):
            self.choose_among(rev.id, [rev.id, original.id], "regenerate",
                              {rev.id: "revision", original.id: "original"})
        self._apply(self._save(self.log.critique, original.id, rev.critique or "", rev.id, outcome))
        if outcome == "discarded":
            self.show(original.id)

    def review_machine_revision(self, original_id: str, critique: str, text: str, run_id: str, approve: bool):
        """The morning review of a revision ``engine finetune`` wrote (engine.train.revise): it becomes a
        revision in the log, accepted (a human-accepted pair for the next run) or discarded."""
        record = {"machine_revision": True, "run": run_id, "revision_of": original_id, "critique": critique}
        rev = self.add_reply(self.message(original_id).parent_id, text, record, show=False)
        self.resolve_revision(rev.id, "accepted" if approve else "discarded")
        return rev


def _best_of_size(message) -> int:
    """The n of the best-of-n set a reply came from (1 for an ordinary reply)."""
    try:
        return int((message.generation or {}).get("best_of") or 1)
    except (TypeError, ValueError):
        return 1


SERVED = "serve"
"""``source`` of the events ``engine serve`` writes (engine/serve/recorder.py)."""


def served_conversations(events) -> set[str]:
    """Conversations started through ``engine serve`` (their first message has ``"source": "serve"``)."""
    first: dict[str, bool] = {}
    for e in events:
        if e.get("type") == "message" and e.get("conversation_id") not in first:
            first[e["conversation_id"]] = e.get("source") == SERVED
    return {cid for cid, served in first.items() if served}
