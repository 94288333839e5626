"""The list of past conversations (rebuilt from the log), newest first, titles from the log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet

from rich.markup import escape
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

NEW_ID = "__new__"
TITLE_WIDTH = 21  # one line in the 24-column sidebar
SERVED_MARK = "api "
"""Before the title of a conversation held through ``engine serve`` (another program's, not the person's)."""


class Sidebar(OptionList):
    DEFAULT_CSS = """
    Sidebar { width: 24; height: 1fr; border: none; border-right: vkey $foreground 20%; }
    Sidebar:focus { border: none; border-right: vkey $accent; }
    """

    @dataclass
    class Opened(Message):
        """The person chose conversation ``conversation_id`` (None: start a new one)."""

        conversation_id: str | None

    def show(self, conversations: list, current_id: str, served: AbstractSet[str] = frozenset()) -> None:
        """Rebuild the options: '+ New conversation' then each conversation, newest first; one a
        program held through ``engine serve`` is marked "api".

        Skipped when nothing changed: the app calls this after every keypress."""
        key = (tuple((c.id, c.title, c.id in served) for c in conversations), current_id)
        if key == getattr(self, "_shown_key", None):
            return
        self._shown_key = key
        self.clear_options()
        options = [Option("[b]+ New conversation[/b]", id=NEW_ID)]
        for conv in reversed(conversations):
            title = " ".join((conv.title or "(untitled)").split())
            width = TITLE_WIDTH - (len(SERVED_MARK) if conv.id in served else 0)
            if len(title) > width:
                title = title[: width - 1] + "…"
            mark = f"[dim]{SERVED_MARK}[/dim]" if conv.id in served else ""
            options.append(Option(mark + escape(title), id=conv.id))
        self.add_options(options)
        ids = [o.id for o in options]
        self.highlighted = ids.index(current_id) if current_id in ids else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        oid = event.option.id
        self.post_message(self.Opened(None if oid == NEW_ID else oid))
