"""The multi-line message box: Enter sends, ctrl+j (or shift+enter where the terminal reports it)
inserts a newline. Both keys are remappable through their binding ids."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    BINDINGS = [
        Binding("enter", "send", "Send", id="composer.send", priority=True, tooltip="Send the message"),
        Binding("ctrl+j,shift+enter", "newline", "Newline", id="composer.newline", priority=True,
                tooltip="Insert a newline"),
    ]

    DEFAULT_CSS = """
    Composer { height: auto; min-height: 3; max-height: 10; }
    """

    @dataclass
    class Submitted(Message):
        text: str

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)

    def action_send(self) -> None:
        text = self.text.strip()
        if text:
            self.post_message(self.Submitted(text))  # the app clears the box once it accepts it

    def action_newline(self) -> None:
        self.insert("\n")
