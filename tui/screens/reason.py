"""Thumbs with reasons: pick up/down, tick reason tags, add a comment. One `rating` event on save."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, RadioButton, RadioSet, SelectionList, Static

DEFAULT_TAGS = ["wrong", "unhelpful", "too long", "too short", "off-topic", "unsafe", "style", "great"]


@dataclass
class Reason:
    value: int
    tags: list[str]
    comment: str | None


class ReasonScreen(ModalScreen[Reason | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="reason.save", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", id="reason.cancel", priority=True),
    ]

    DEFAULT_CSS = """
    ReasonScreen { align: center middle; }
    ReasonScreen > Vertical { width: 60; max-width: 95%; height: auto; max-height: 95%; border: thick $accent; background: $surface; padding: 0 1; }
    ReasonScreen SelectionList { height: auto; max-height: 10; }
    ReasonScreen RadioSet { layout: horizontal; width: auto; }
    """

    def __init__(self, value: int, tags: list[str], comment: str | None) -> None:
        super().__init__()
        self.value = value if value else -1
        self.tags = list(tags)
        self.comment = comment or ""

    def compose(self) -> ComposeResult:
        all_tags = DEFAULT_TAGS + [t for t in self.tags if t not in DEFAULT_TAGS]
        with Vertical():
            yield Static("Why? — ctrl+s saves, Esc cancels")
            with RadioSet(id="value"):
                yield RadioButton("👍 good", value=self.value > 0, id="up")
                yield RadioButton("👎 bad", value=self.value < 0, id="down")
            yield SelectionList[str](*[(t, t, t in self.tags) for t in all_tags], id="tags")
            yield Input(self.comment, placeholder="comment (optional)", id="comment")

    def on_mount(self) -> None:
        self.query_one("#tags").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._save_typed()

    def action_save(self) -> None:
        # ctrl+s is a priority binding: it runs before keys typed just before it reach the focused
        # field, so read the fields after them (in that field's queue).
        (self.app.focused or self).call_later(self._save_typed)

    def _save_typed(self) -> None:
        if not self.is_current:  # already saved or closed (ctrl+s twice in a burst)
            return
        up = self.query_one("#up", RadioButton).value
        tags = list(self.query_one("#tags", SelectionList).selected)
        comment = self.query_one("#comment", Input).value.strip() or None
        self.dismiss(Reason(1 if up else -1, tags, comment))
