"""Messages the background workers post to the app ("attributes down, messages up").

Workers run in threads; ``post_message`` is thread-safe, so each result crosses back to the UI as
one of these. High-frequency ones override ``can_replace`` so queued duplicates collapse instead of
piling up behind a busy screen (a reply can produce hundreds of pieces per second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.notifications import SeverityLevel

if TYPE_CHECKING:
    from engine.train.revise import ReviewItem


@dataclass
class ModelProgress(Message):
    """The model loader reached ``stage``; ``fraction`` is 0..1 where the loader reports one."""

    stage: str
    fraction: float | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelProgress)


@dataclass
class ModelReady(Message):
    """The model for ``profile`` finished loading; ``warning`` if its promoted adapter failed."""

    profile: str
    generator: Any
    warning: str | None = None


@dataclass
class ReplyProgress(Message):
    """The text of reply ``key`` so far (whole text, not a delta, so replacing an older one is safe)."""

    key: str
    text: str
    pieces: int = 0
    """Pieces decoded so far (about one per token) and seconds since the first one: a live rate."""
    seconds: float = 0.0
    note: str = ""
    """Best-of-n: which candidate is generating ("best of 3: reply 2/3"), shown in the reply's header."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ReplyProgress) and message.key == self.key


@dataclass
class ReplyFinished(Message):
    """Reply ``key`` ended (completed or stopped); ``record`` is the runtime's generation record."""

    key: str
    text: str
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class BestOfFinished(Message):
    """Best-of-n reply ``key`` ended: ``candidates`` are (text, generation record) pairs, best first;
    each record carries ``reward_score``. Empty when the person stopped it before any reply finished."""

    key: str
    candidates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Notice(Message):
    """A one-line note from a worker for the person (shown as a notification)."""

    text: str
    severity: SeverityLevel = "information"


@dataclass
class AdapterActive(Message):
    """The generator now uses adapter ``run_id`` (None: the base model); ``kept``: True when the
    profile's promoted.json points at it too (it lasts past a restart), else why it could not be saved."""

    run_id: str | None
    kept: bool | str = True


@dataclass
class PromotedChanged(Message):
    """``runs/<profile>/promoted.json`` changed on disk: it now points at ``run_id`` (None: base model);
    ``error`` when it cannot be read."""

    profile: str
    run_id: str | None
    error: str | None = None


@dataclass
class ModelNotOnDisk(Message):
    """The model of ``profile`` is not on this machine: the loader will try the hub (or cannot: offline)."""

    profile: str
    model_id: str
    offline: bool


@dataclass
class ProfileList(Message):
    """The F5 list, computed in a worker (whether each model is on disk takes file-system looks)."""

    items: list[tuple[str, str]]


@dataclass
class ReviewList(Message):
    """F8's machine revisions to review (engine.train.revise.review_items), read in a worker."""

    profile: str
    items: list[ReviewItem]
