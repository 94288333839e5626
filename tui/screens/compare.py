"""Blind A/B: two replies to the same prompt side by side, sources hidden until the person picks.

The app generates both replies (base vs the active adapter, or two seeds) and stores each as a
sibling assistant message as soon as it finishes; this screen only shows them, takes the pick
(posted up as :class:`CompareScreen.Picked`, which the app writes as a `choice` event), and then
reveals which source wrote which reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown, Static

from tui.widgets.message_view import MarkdownFeed

SLOTS = ("A", "B")


class CompareScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("1,a", "pick('A')", "Pick A", id="compare.pick_a"),
        Binding("2,b", "pick('B')", "Pick B", id="compare.pick_b"),
        Binding("escape", "close", "Close", id="compare.close"),
    ]

    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical { width: 100%; height: 100%; background: $surface; }
    CompareScreen .hint { height: auto; padding: 0 1; color: $text-muted; }
    CompareScreen Horizontal { height: 1fr; }
    CompareScreen VerticalScroll { width: 1fr; border: round $foreground 30%; padding: 0 1; }
    CompareScreen VerticalScroll.-chosen { border: round $success; }
    CompareScreen .slot-header { text-style: bold; height: 1; }
    """

    @dataclass
    class Picked(Message):
        screen: "CompareScreen"
        slot: str

    def __init__(self, sources: dict[str, str]) -> None:
        super().__init__()
        self.sources = sources  # slot -> label, hidden until the pick
        self.message_ids: dict[str, str] = {}
        self.feeds: dict[str, MarkdownFeed] = {}
        self.chosen: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Blind comparison: generating A, then B…", classes="hint", id="hint")
            with Horizontal():
                for slot in SLOTS:
                    with VerticalScroll(id=f"slot-{slot}"):
                        yield Static(slot, classes="slot-header", id=f"header-{slot}")
                        yield Markdown("", id=f"body-{slot}")
            yield Footer()

    @property
    def ready(self) -> bool:
        return all(s in self.message_ids for s in SLOTS)

    async def progress(self, slot: str, text: str) -> None:
        if slot not in self.feeds:
            self.feeds[slot] = MarkdownFeed(self.query_one(f"#body-{slot}", Markdown))
        await self.feeds[slot].show(text)

    async def finished(self, slot: str, message_id: str, text: str) -> None:
        self.message_ids[slot] = message_id
        if slot not in self.feeds:
            self.feeds[slot] = MarkdownFeed(self.query_one(f"#body-{slot}", Markdown))
        await self.feeds[slot].show(text, final=True)
        await self.feeds[slot].stop()
        if self.ready:
            self.query_one("#hint", Static).update("Which reply is better? Press 1/a for A, 2/b for B, Esc to skip.")
        self.refresh_bindings()

    def check_action(self, action: str, parameters) -> bool | None:
        if action == "pick":
            return self.ready and self.chosen is None
        return True

    def action_pick(self, slot: str) -> None:
        if self.chosen is not None:
            return  # a second pick in the same burst, before the app revealed the first
        self.chosen = slot  # at key time: the next key of a burst sees it
        self.post_message(self.Picked(self, slot))

    def reveal(self, slot: str) -> None:
        """Called by the app once the choice is written: show who wrote what."""
        self.chosen = slot
        for s in SLOTS:
            star = " ★ picked" if s == slot else ""
            self.query_one(f"#header-{s}", Static).update(f"{s} — {escape(self.sources[s])}{star}")
            self.query_one(f"#slot-{s}").set_class(s == slot, "-chosen")
        self.query_one("#hint", Static).update(f"You picked {slot} ({escape(self.sources[slot])}). Esc closes.")
        self.refresh_bindings()

    def action_close(self) -> None:
        self.dismiss(None)
