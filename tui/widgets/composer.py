"""The multi-line message box: Enter sends, ctrl+j (or shift+enter where the terminal reports it)
inserts a newline. Both keys are remappable through their binding ids.

Both are priority bindings (the TextArea would otherwise take Enter as a newline), so their actions
run when the *app* reads the key, while characters typed just before it may still wait in this
widget's queue (a burst: a fast typist on a busy CPU, ``tmux send-keys``, a paste without bracketed
paste). The actions therefore queue their work behind those characters (``call_later``) instead of
reading ``self.text`` at once: Enter sends exactly what was typed before it.
"""

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
        """What was typed (stripped); empty for Enter on an empty composer."""

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)

    def action_send(self) -> None:
        self.call_later(self._send_typed)

    def _send_typed(self) -> None:
        """Runs in key order: the text is what was typed before Enter; what follows it stays."""
        text = self.text.strip()
        if text:
            self.clear()
        self.post_message(self.Submitted(text))  # empty: the app may send messages it holds

    def give_back(self, text: str) -> None:
        """The app could not take ``text`` (busy, or the log is not writable): put it back in front of
        anything typed since, so nothing the person wrote is lost."""
        rest = self.text
        self.text = text + ("\n" + rest if rest.strip() else "")
        self.move_cursor(self.document.end)

    def action_newline(self) -> None:
        self.call_later(self.insert, "\n")
