"""A failure shown as a sentence, never a traceback; optionally offers to switch to the demo profile."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorScreen(ModalScreen[str | None]):
    """Dismisses with "demo" when the person accepts the demo profile, else None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="error.close")]

    DEFAULT_CSS = """
    ErrorScreen { align: center middle; }
    ErrorScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    ErrorScreen .title { text-style: bold; color: $error; }
    ErrorScreen Horizontal { height: auto; margin-top: 1; }
    ErrorScreen Button { margin-right: 2; }
    """

    def __init__(self, title: str, message: str, offer_demo: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.offer_demo = offer_demo

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(escape(self.title_text), classes="title")
            yield Static(escape(self.message), id="error-message")
            with Horizontal():
                if self.offer_demo:
                    yield Button("Switch to the demo profile", id="demo", variant="primary")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#demo" if self.offer_demo else "#close", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss("demo" if event.button.id == "demo" else None)
