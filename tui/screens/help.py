"""Every key with its binding id (the name to remap it by in home/config.toml [keys])."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "dismiss(None)", "Close", id="help.close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-width: 95%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, sections: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> None:
        super().__init__()
        self.sections = sections
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        lines = ["[b]tuneloop keys[/b]  (remap in home/config.toml, e.g. [keys] \"chat.like\" = \"plus\")", ""]
        for title, bindings in self.sections:
            lines.append(f"[b]{escape(title)}[/b]")
            for b in bindings:
                key = self.keymap.get(b.id or "", b.key)
                what = b.tooltip or b.description
                lines.append(f"  {escape(key):<28} {escape(what):<44} [dim]{escape(b.id or '')}[/dim]")
            lines.append("")
        with VerticalScroll():
            yield Static("\n".join(lines))
