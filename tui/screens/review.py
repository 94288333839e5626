"""The morning review: the revisions ``engine finetune`` wrote for critiques nobody revised, one key each.

The screen only shows and asks; each verdict goes up as :class:`ReviewScreen.Judged` and the app writes it
to the log (tui.session.ChatSession.review_machine_revision), then calls :meth:`ReviewScreen.advance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from engine.train.revise import ReviewItem


class ReviewScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("y", "judge(True)", "Approve", id="review.approve",
                tooltip="Approve the revision: it trains as if you had accepted it"),
        Binding("n", "judge(False)", "Reject", id="review.reject", tooltip="Reject the revision (not trained on)"),
        Binding("s", "skip", "Skip", id="review.skip", tooltip="Decide later (offered again next time)"),
        Binding("escape", "dismiss(None)", "Close", id="review.close", tooltip="Close the review"),
    ]

    DEFAULT_CSS = """
    ReviewScreen { align: center middle; }
    ReviewScreen > VerticalScroll { width: 100; max-width: 95%; height: 80%; border: thick $accent;
                                    background: $surface; padding: 0 1; }
    """

    @dataclass
    class Judged(Message):
        item: ReviewItem
        approve: bool

    def __init__(self, items: list, originals: dict[str, str]) -> None:
        super().__init__()
        self.items = list(items)
        self.originals = originals
        self.index = 0
        self.approved = self.rejected = 0

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="review-body")

    def on_mount(self) -> None:
        self.show_current()

    @property
    def current(self):
        return self.items[self.index] if self.index < len(self.items) else None

    def show_current(self) -> None:
        item = self.current
        body = self.query_one("#review-body", Static)
        if item is None:
            body.update(f"[b]Review done[/b]: {self.approved} approved, {self.rejected} rejected. Esc closes.")
            return
        body.update(
            f"[b]Machine revision {self.index + 1} of {len(self.items)}[/b] [dim](run {escape(item.run_id)})[/dim]\n\n"
            f"[b]Your critique:[/b] {escape(item.critique)}\n\n"
            f"[b]The reply you disliked:[/b]\n{escape(self.originals.get(item.original_id, ''))}\n\n"
            f"[b]The revision written overnight:[/b]\n{escape(item.revision)}\n\n"
            "[dim]y approve · n reject · s skip · Esc close[/dim]")

    def action_judge(self, approve: bool) -> None:
        if self.current is not None:
            self.post_message(self.Judged(self.current, approve))

    def action_skip(self) -> None:
        if self.current is not None:
            self.index += 1
            self.show_current()

    def advance(self, approve: bool) -> None:
        """The verdict on the current item was saved: count it and show the next one."""
        if approve:
            self.approved += 1
        else:
            self.rejected += 1
        self.index += 1
        self.show_current()
