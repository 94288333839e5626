"""Every key with its binding id (the name to remap it by in home/config.toml [keys])."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

NAMED_KEYS = {"enter": "Enter", "escape": "Esc", "tab": "Tab", "space": "Space", "backspace": "Backspace",
              "up": "↑", "down": "↓", "left": "←", "right": "→"}


def key_display(keys: str) -> str:
    """Binding keys as a person types them: "plus,equals_sign" -> "+, =", "ctrl+j" -> "ctrl+j"."""
    from textual.keys import format_key

    out = []
    for key in keys.split(","):
        *modifiers, name = key.strip().split("+")
        shown = NAMED_KEYS.get(name) or format_key(name)
        out.append("+".join([*modifiers, shown]))
    return ", ".join(out)


def keys_table(sections: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> Table:
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key", ratio=2, no_wrap=False)
    table.add_column("what it does", ratio=5)
    table.add_column("binding id", ratio=3, style="dim")
    for title, bindings in sections:
        table.add_row(Text(title, style="bold underline"), "", "")
        for b in bindings:
            table.add_row(key_display(keymap.get(b.id or "", b.key)), b.tooltip or b.description, b.id or "")
        table.add_row("", "", "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "dismiss(None)", "Close", id="help.close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100; max-width: 95%; height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def __init__(self, sections: list[tuple[str, list[Binding]]], keymap: dict[str, str], config_path=None) -> None:
        super().__init__()
        self.sections = sections
        self.keymap = keymap
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        where = "the home's config.toml"
        if self.config_path is not None:
            exists = "" if self.config_path.is_file() else " (create it)"
            where = f"{self.config_path}{exists}"
        intro = Text.assemble(("tuneloop keys", "bold"), "  — ctrl+q quits. Remap any key in ", (where, "bold"),
                              ", e.g.\n  [keys]\n  \"chat.like\" = \"l\"\n")
        with VerticalScroll():
            yield Static(Group(intro, keys_table(self.sections, self.keymap)), id="help-keys")
