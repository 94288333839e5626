"""Which logged conversation a request continues.

A chat-completions request carries the whole conversation. The server keys every logged message by
the path of (role, text) turns from the root to it (a chain of sha256); a request whose earlier turns
match a logged path continues that conversation (its new turns and the reply are added under the
matched message; resending the same turns again makes the reply a sibling, like a regenerate),
otherwise it starts a new conversation. System messages are not part of the path: the system prompt
lives in each reply's generation record. The index is built from the log when the server starts,
and kept up to date with what the server writes; it is rebuilt from the log when a feedback request
names a message it does not know (the chat app may have written it meanwhile).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

PATH_ROLES = ("user", "assistant")


def step(key: str, role: str, content: str) -> str:
    """The path key of a message with this role and text after the path ``key`` ('' at the root)."""
    h = hashlib.sha256()
    for part in (key, role, content):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


@dataclass(frozen=True)
class Known:
    conversation_id: str
    message_id: str
    role: str


@dataclass
class Plan:
    """Where a request's reply goes: under ``parent_id`` in ``conversation_id`` (None: a new
    conversation), after writing ``new_turns`` (the request's turns not logged yet), with their keys."""

    conversation_id: str | None
    parent_id: str | None
    new_turns: list[dict]
    keys: list[str]  # the path key of each new turn
    parent_key: str  # the path key of the whole request (the reply's parent)


class ConversationIndex:
    def __init__(self) -> None:
        self._by_path: dict[str, Known] = {}
        self._by_id: dict[str, Known] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_log(cls, log) -> ConversationIndex:
        index = cls()
        index.rebuild(log)
        return index

    def rebuild(self, log) -> None:
        state = log.replay()
        by_path: dict[str, Known] = {}
        by_id: dict[str, Known] = {}
        for conv in state.conversations.values():
            keys: dict[str | None, str] = {None: ""}
            for m in conv.messages:  # creation order: a parent comes before its children
                parent_key = keys.get(m.parent_id, "")
                known = Known(conv.id, m.id, m.role)
                by_id[m.id] = known
                if m.role in PATH_ROLES:
                    keys[m.id] = step(parent_key, m.role, m.content)
                    by_path[keys[m.id]] = known
                else:
                    keys[m.id] = parent_key
        with self._lock:
            self._by_path, self._by_id = by_path, by_id

    def message(self, message_id: str) -> Known | None:
        with self._lock:
            return self._by_id.get(message_id)

    def plan(self, turns: list[dict]) -> Plan:
        """``turns``: the request's user/assistant messages (role, content), the last a user turn."""
        keys, key = [], ""
        for turn in turns:
            key = step(key, turn["role"], turn["content"])
            keys.append(key)
        with self._lock:
            for n in range(len(turns), 0, -1):  # the longest logged prefix
                known = self._by_path.get(keys[n - 1])
                if known is not None:
                    return Plan(known.conversation_id, known.message_id, turns[n:], keys[n:], key)
        return Plan(None, None, list(turns), keys, key)

    def add(self, key: str | None, conversation_id: str, message_id: str, role: str) -> None:
        known = Known(conversation_id, message_id, role)
        with self._lock:
            self._by_id[message_id] = known
            if key is not None:
                self._by_path[key] = known
