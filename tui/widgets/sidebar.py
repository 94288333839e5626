"""The list of past conversations (rebuilt from the log), newest first, titles from the log."""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

NEW_ID = "__new__"
TITLE_WIDTH = 21  # one line in the 24-column sidebar


class Sidebar(OptionList):
    DEFAULT_CSS = """
    Sidebar { width: 24; height: 1fr; border: none; border-right: vkey $foreground 20%; }
    Sidebar:focus { border: none; border-right: vkey $accent; }
    """

    @dataclass
    class Opened(Message):
        """The person chose conversation ``conversation_id`` (None: start a new one)."""

        conversation_id: str | None

    def show(self, conversations: list, current_id: str) -> None:
        """Rebuild the options: '+ New conversation' then each conversation, newest first.

        Skipped when nothing changed: the app calls this after every keypress."""
        key = (tuple((c.id, c.title) for c in conversations), current_id)
        if key == getattr(self, "_shown_key", None):
            return
        self._shown_key = key
        self.clear_options()
        options = [Option("[b]+ New conversation[/b]", id=NEW_ID)]
        for conv in reversed(conversations):
            title = " ".join((conv.title or "(untitled)").split())
            if len(title) > TITLE_WIDTH:
                title = title[: TITLE_WIDTH - 1] + "…"
            options.append(Option(escape(title), id=conv.id))
        self.add_options(options)
        ids = [o.id for o in options]
        self.highlighted = ids.index(current_id) if current_id in ids else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id
        self.post_message(self.Opened(None if oid == NEW_ID else oid))
