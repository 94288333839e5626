"""What the reply queue holds: a reply to generate (:class:`ReplyJob`) and a message typed meanwhile
(:class:`QueuedSend`); plain data, shared by tui.replies (which runs them) and tui.judging (which makes them).
:class:`Stoppable` is what Esc needs of the reply generating now."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tui.screens.compare import CompareScreen


class Stoppable(Protocol):
    """What Esc needs of a reply being generated (a model's stream, or best-of's relay of one)."""

    def cancel(self) -> None: ...


class Keep(enum.Enum):
    """The type of :data:`KEEP`."""

    KEEP = "keep"


KEEP = Keep.KEEP
"""A job's ``adapter`` when it leaves the active adapter alone."""
_keys = itertools.count(1)


@dataclass
class ReplyJob:
    """One reply to generate for ``parent_id`` (a user message)."""

    parent_id: str
    target: str = "chat"
    """``chat`` (streams into the message list) or a compare slot ``A``/``B``."""
    overrides: dict[str, Any] = field(default_factory=dict)
    adapter: str | None | Keep = KEEP
    """Adapter to use for this reply only (compare: None = base); restored afterwards."""
    screen: CompareScreen | None = None
    best_of: int = 1
    """Above 1 (chat only): that many sampled replies, scored by the reward model, become siblings."""
    key: str = field(default_factory=lambda: f"reply-{next(_keys)}")
    stop_requested: bool = False
    """Esc was pressed: a best-of job starts no further candidate."""
    revision: tuple[str, str] | None = None
    """(original reply id, critique): a revision of that reply after the critique (language feedback);
    ``parent_id`` is then the original's parent, so the revision becomes its sibling."""


@dataclass
class QueuedSend:
    """A message typed and sent (Enter) while a reply was generating: it waits, shown as queued, and is
    sent as its own turn when the replies before it are done (never joined to the next text typed)."""

    conversation_id: str
    text: str
    key: str = field(default_factory=lambda: f"queued-{next(_keys)}")

