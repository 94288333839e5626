"""Replay the event log into conversation trees with the latest state of every judgement.

"Latest" means later in the log (file name order, then line order), not a larger ``ts``: the log
order is what the appends produced, while clocks can jump. Rules:
- rating: the latest wins; value 0 clears the rating, its tags and comment.
- edit: the latest wins; an edit back to the original text clears the edit.
- choice: per sibling group (same parent) the latest choice wins: its chosen message is
  ``picked``, every other sibling is not. All candidates must be siblings of the chosen one.
- title: the latest wins; the default is the first user message, cut to ~48 characters.
- critique (schema v2, language feedback): the latest outcome of a revision wins (``Message.outcome``); the
  revision is a sibling of the critiqued reply whose generation record names it (``revision_of``).
Events that point at something unknown (a parent, message or conversation that is not in the log)
become problems, never crashes; a message whose parent is unknown is dropped with its descendants.
Events with ``"v"`` above the supported version, or of a type this reader does not know, are ignored.
Imports are transactions: events carrying an ``import_id`` count only once the ``import`` commit record
with that id is in the log (:func:`visible_events`); an import killed part-way leaves events that stay
invisible and are reported (``State.uncommitted``), so importing the file again never duplicates rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.feedback.events import EVENT_TYPES, IMPORT_KEY, SCHEMA_VERSION, version_of
from engine.feedback.gc_pause import gc_paused
from engine.feedback.read_result import SHA_PREFIX, Problem, ReadResult

TITLE_CHARS = 48


@dataclass
class Message:
    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    ts: float
    generation: dict | None = None
    rating: int = 0
    tags: list[str] = field(default_factory=list)
    comment: str | None = None
    edited: str | None = None
    picked: bool = False
    outcome: str | None = None
    """A revision's latest outcome from a ``critique`` event: accepted, edited, discarded (None: none yet)."""

    @property
    def final_text(self) -> str:
        """The text to use from now on: the edit if there is one, else the original."""
        return self.edited if self.edited is not None else self.content

    @property
    def revision_of(self) -> str | None:
        """The reply this one revises after a critique (language feedback), else None."""
        value = (self.generation or {}).get("revision_of")
        return value if isinstance(value, str) else None

    @property
    def critique(self) -> str | None:
        """The critique this revision answers (None for an ordinary reply)."""
        value = (self.generation or {}).get("critique") if self.revision_of else None
        return value if isinstance(value, str) else None

    @property
    def system_prompt(self) -> str:
        """The system prompt this reply was generated with ('' when none or not recorded)."""
        return (self.generation or {}).get("system_prompt") or ""


@dataclass
class Choice:
    """The latest choice of one sibling group (``parent_id`` may be None for first messages)."""

    id: str
    conversation_id: str
    parent_id: str | None
    chosen_id: str
    candidates: list[str]
    kind: str
    sources: dict[str, str] | None
    ts: float


@dataclass
class Conversation:
    id: str
    created: float
    messages: list[Message] = field(default_factory=list)
    """Every message of the conversation, in creation (log) order."""
    explicit_title: str | None = None

    @property
    def title(self) -> str:
        if self.explicit_title:
            return self.explicit_title
        return default_title(self.messages)

    def _index(self) -> tuple[dict[str, Message], dict[str | None, list[Message]]]:
        """id -> message and parent id -> children, rebuilt only when ``messages`` changed size."""
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] != len(self.messages):
            by_id: dict[str, Message] = {}
            kids: dict[str | None, list[Message]] = {}
            for m in self.messages:
                by_id[m.id] = m
                kids.setdefault(m.parent_id, []).append(m)
            cache = self.__dict__["_cache"] = (len(self.messages), by_id, kids)
        return cache[1], cache[2]

    def message(self, message_id: str) -> Message | None:
        return self._index()[0].get(message_id)

    def children(self, parent_id: str | None) -> list[Message]:
        """Siblings under ``parent_id`` (None: the conversation's first messages), creation order."""
        return list(self._index()[1].get(parent_id, ()))

    def path_to(self, message_id: str) -> list[Message]:
        """The messages from the root down to ``message_id`` (inclusive); [] if it is not here."""
        by_id = self._index()[0]
        path = []
        cur = by_id.get(message_id)
        while cur is not None:
            path.append(cur)
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        return path[::-1]

    def leaves(self) -> list[Message]:
        """Messages with no children, in creation order (the ends of every branch)."""
        kids = self._index()[1]
        return [m for m in self.messages if m.id not in kids]


@dataclass
class State:
    conversations: dict[str, Conversation] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    choices: list[Choice] = field(default_factory=list)
    """The effective (latest) choice of each sibling group, in the order they were made."""
    problems: list[Problem] = field(default_factory=list)
    future_versions: int = 0
    replay_problems: int = 0
    """How many of ``problems`` are events that refer to something unknown (the rest are bad lines)."""
    uncommitted: dict[str, int] = field(default_factory=dict)
    """import id -> events of an ``engine import`` that never wrote its commit record (ignored)."""

    _latest_choice: dict[tuple[str, str | None], Choice] = field(default_factory=dict, repr=False, compare=False)
    """(conversation, parent id) -> its latest choice (``choices`` is its values, kept in step)."""

    # ---- the replay rules, one event at a time -----------------------------------------------------
    def apply(self, e: dict[str, Any]) -> bool:
        """Apply one visible event (see :func:`visible_events`) after those before it in the log: the one
        place the replay rules are written (a live session applies its own appends with it too).
        An event that points at something unknown becomes a problem and changes nothing: returns False."""
        kind = e["type"]
        if kind == "message":
            parent = self.messages.get(e["parent_id"]) if e["parent_id"] is not None else None
            if e["parent_id"] is not None and (parent is None or parent.conversation_id != e["conversation_id"]):
                self._problem(e, f"parent {e['parent_id']} is unknown or in another conversation, message skipped")
                return False
            if e["id"] in self.messages:
                self._problem(e, "duplicate message id, later copy ignored")
                return False
            self._add_message(e)
        elif kind == "title":
            conv = self.conversations.get(e["conversation_id"])
            if conv is None:
                self._problem(e, f"conversation {e['conversation_id']} is unknown")
                return False
            conv.explicit_title = e["title"].strip() or None
        elif kind in ("rating", "edit"):
            msg = self.messages.get(e["message_id"])
            if msg is None:
                self._problem(e, f"message {e['message_id']} is unknown")
                return False
            if kind == "rating":
                msg.rating = e["value"]
                msg.tags = list(e.get("tags") or []) if e["value"] else []
                msg.comment = e.get("comment") if e["value"] else None
            else:
                msg.edited = e["content"] if e["content"] != msg.content else None
        elif kind == "choice":
            return self._apply_choice(e)
        elif kind == "critique":
            msg = self.messages.get(e["message_id"])
            rid = e.get("revision_id")
            rev = self.messages.get(rid) if rid is not None else None
            if msg is None or (rid is not None and rev is None):
                self._problem(e, f"message {e['message_id'] if msg is None else rid} is unknown")
                return False
            if rev is not None:
                rev.outcome = e["outcome"]
        return True

    def _apply_choice(self, e: dict[str, Any]) -> bool:
        missing = [c for c in e["candidates"] if c not in self.messages]
        if missing:
            self._problem(e, f"candidate {missing[0]} is unknown")
            return False
        msgs = [self.messages[c] for c in e["candidates"]]
        chosen = self.messages[e["chosen_id"]]
        if any(m.parent_id != chosen.parent_id or m.conversation_id != chosen.conversation_id for m in msgs):
            self._problem(e, "candidates are not siblings of the chosen message")
            return False
        key = (chosen.conversation_id, chosen.parent_id)
        self._latest_choice.pop(key, None)  # re-insert so dict order is the order choices were made
        self._latest_choice[key] = Choice(
            id=e["id"],
            conversation_id=chosen.conversation_id,
            parent_id=chosen.parent_id,
            chosen_id=chosen.id,
            candidates=list(e["candidates"]),
            kind=e["kind"],
            sources=e.get("sources"),
            ts=float(e["ts"]),
        )
        for sibling in self.conversations[chosen.conversation_id].children(chosen.parent_id):
            sibling.picked = sibling.id == chosen.id
        self.choices = list(self._latest_choice.values())
        return True

    def _add_message(self, e: dict[str, Any]) -> Message:
        msg = Message(
            id=e["id"],
            conversation_id=e["conversation_id"],
            parent_id=e["parent_id"],
            role=e["role"],
            content=e["content"],
            ts=float(e["ts"]),
            generation=e.get("generation"),
        )
        conv = self.conversations.get(msg.conversation_id)
        if conv is None:
            conv = self.conversations[msg.conversation_id] = Conversation(msg.conversation_id, msg.ts)
        conv.messages.append(msg)
        self.messages[msg.id] = msg
        return msg

    def _problem(self, event: dict, reason: str) -> None:
        self.problems.append(Problem("replay", 0, f"{event.get('type')} event {event.get('id')}: {reason}"))

    def warnings(self) -> list[str]:
        """One line about events that were ignored because they point at unknown messages, and one about
        unfinished imports."""
        out = []
        if self.replay_problems:
            first = self.problems[-self.replay_problems].reason
            out.append(f"{self.replay_problems} feedback event(s) refer to unknown messages and are ignored "
                       f"(first: {first}).")
        if self.uncommitted:
            n = sum(self.uncommitted.values())
            ids = ", ".join(sorted(self.uncommitted)[:3])
            out.append(f"{n} feedback event(s) of {len(self.uncommitted)} unfinished import(s) ({ids}) are ignored: "
                       "that import was stopped before it finished; import the file again (this warning then goes away).")
        return out


def visible_events(events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The events of known versions replay uses, in log order, and ``{import id: events}`` of unfinished imports.

    Import commit records themselves, newer-version events and unknown types are left out; an event with
    an ``import_id`` is kept only when that import's commit record is somewhere in the log.
    """
    current = [e for e in events if e.get("type") in EVENT_TYPES and _is_version(e.get("v"))
               and version_of(e["type"]) <= e["v"]]
    committed = {e["import_id"] for e in current if e["type"] == "import"}
    # An import id starts with its file's sha256 (engine.feedback.import_rows.SHA_PREFIX): once that file was
    # imported again and committed, the stopped import's events stay invisible without a warning.
    reimported = {e["sha256"][:SHA_PREFIX] for e in current if e["type"] == "import" and isinstance(e.get("sha256"), str)}
    out: list[dict[str, Any]] = []
    pending: dict[str, int] = {}
    for e in current:
        if e["type"] == "import":
            continue
        iid = e.get(IMPORT_KEY)
        if iid is not None and iid not in committed:
            key = str(iid)
            if key[:SHA_PREFIX] not in reimported:
                pending[key] = pending.get(key, 0) + 1
            continue
        out.append(e)
    return out, pending



def _is_version(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= SCHEMA_VERSION


def default_title(messages: Iterable[Message]) -> str:
    for m in messages:
        if m.role == "user":
            text = " ".join(m.content.split())
            return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"
    return "(empty conversation)"


def replay(source: ReadResult | Iterable[dict[str, Any]]) -> State:
    """Build the State from a ReadResult (its problems are carried over) or a list of events."""
    with gc_paused():
        return _replay(source)


def _replay(source: ReadResult | Iterable[dict[str, Any]]) -> State:
    state = State()
    if isinstance(source, ReadResult):
        events = source.events
        state.problems.extend(source.problems)
        state.future_versions = source.future_versions
    else:
        events = list(source)
        state.future_versions = sum(
            1 for e in events if isinstance(v := e.get("v"), int) and v > SCHEMA_VERSION
        )

    def problem(event: dict, reason: str) -> None:
        state._problem(event, reason)

    current, state.uncommitted = visible_events(events)

    # 1. Messages. Collected first so a parent later in the log (another file) still resolves.
    msg_events: dict[str, dict] = {}
    order: list[str] = []
    for e in current:
        if e["type"] != "message":
            continue
        if e["id"] in msg_events:
            problem(e, "duplicate message id, later copy ignored")
            continue
        msg_events[e["id"]] = e
        order.append(e["id"])

    known: dict[str, bool] = {}  # message id -> its chain reaches a root inside its conversation

    def resolvable(mid: str) -> bool:
        chain, cur, ok = [], msg_events[mid], True
        while True:
            if cur["id"] in known:
                ok = known[cur["id"]]
                break
            if cur["id"] in chain:  # a cycle of parents
                ok = False
                break
            chain.append(cur["id"])
            if cur["parent_id"] is None:
                break
            parent = msg_events.get(cur["parent_id"])
            if parent is None or parent["conversation_id"] != cur["conversation_id"]:
                ok = False
                break
            cur = parent
        for c in chain:
            known[c] = ok
        return ok

    for mid in order:
        e = msg_events[mid]
        if not resolvable(mid):
            problem(e, f"parent {e['parent_id']} is unknown or in another conversation, message skipped")
            continue
        state._add_message(e)

    # 2. Judgements, in log order: the latest wins (the same rule a live session applies per event).
    for e in current:
        if e["type"] != "message":
            state.apply(e)
    state.replay_problems = sum(1 for p in state.problems if p.path == "replay")
    return state
