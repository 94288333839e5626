"""Thumbs with reasons: pick up/down, tick reason tags, add a comment. One `rating` event on save.

The rating changes only by its own keys (←/→ or +/-) while the rating row has focus: a letter or a
space typed there goes to the comment field instead (someone who tabbed round the dialog thinks they
are typing a comment; Space used to press 👍 and change the rating unseen). The focused control has a
bright border and its label says which keys it takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
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


class RatingRow(RadioSet, inherit_bindings=False):
    """👍 / 👎: ←/↑/+ chooses 👍, →/↓/- chooses 👎; any other character typed here goes to the comment."""

    BINDINGS = [
        Binding("left,up,plus,equals_sign", "rate(1)", "👍", show=False),
        Binding("right,down,minus", "rate(-1)", "👎", show=False),
    ]
    RATING_KEYS = {"left", "up", "plus", "equals_sign", "right", "down", "minus"}

    def on_mount(self) -> None:
        self._selected = self.pressed_index if self.pressed_index >= 0 else 0  # the cursor on the rating given

    def action_rate(self, value: int) -> None:
        button = self.query_one("#up" if value > 0 else "#down", RadioButton)
        button.value = True
        self._selected = 0 if value > 0 else 1

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character and event.key not in self.RATING_KEYS:
            event.stop()
            event.prevent_default()
            comment = self.screen.query_one("#comment", Input)
            comment.focus()
            comment.insert_text_at_cursor(event.character)


class ReasonScreen(ModalScreen[Reason | None]):
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="reason.save", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", id="reason.cancel", priority=True),
    ]

    DEFAULT_CSS = """
    ReasonScreen { align: center middle; }
    ReasonScreen > Vertical { width: 60; max-width: 95%; height: auto; max-height: 95%; border: thick $accent; background: $surface; padding: 0 1; }
    ReasonScreen SelectionList { height: auto; max-height: 12; }
    ReasonScreen RatingRow { layout: horizontal; width: 100%; }
    ReasonScreen RatingRow, ReasonScreen SelectionList, ReasonScreen Input { border: round $foreground 25%; }
    ReasonScreen RatingRow:focus, ReasonScreen SelectionList:focus, ReasonScreen Input:focus {
        border: round $warning; border-title-color: $warning; border-title-style: bold;
    }
    """

    def __init__(self, value: int, tags: list[str], comment: str | None) -> None:
        super().__init__()
        self.value = value if value else -1
        self.tags = list(tags)
        self.comment = comment or ""

    def compose(self) -> ComposeResult:
        all_tags = DEFAULT_TAGS + [t for t in self.tags if t not in DEFAULT_TAGS]
        with Vertical():
            yield Static("Why? — Tab moves, ctrl+s saves, Esc cancels")
            with RatingRow(id="value") as row:
                row.border_title = "rating: ← → or + -"
                yield RadioButton("👍 good", value=self.value > 0, id="up")
                yield RadioButton("👎 bad", value=self.value < 0, id="down")
            tags = SelectionList[str](*[(t, t, t in self.tags) for t in all_tags], id="tags")
            tags.border_title = "tags: Space ticks"
            yield tags
            comment = Input(self.comment, placeholder="comment (optional)", id="comment", select_on_focus=False)
            comment.border_title = "comment: Enter saves"
            yield comment

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
