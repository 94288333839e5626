"""Choose one item from a list (profiles, adapters)."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class ChooseScreen(ModalScreen[str | None]):
    """``items`` are (id, label) pairs; dismisses with the chosen id, or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", id="choose.cancel")]

    DEFAULT_CSS = """
    ChooseScreen { align: center middle; }
    ChooseScreen > Vertical { width: 70; max-width: 95%; height: auto; max-height: 90%; border: thick $accent; background: $surface; padding: 0 1; }
    ChooseScreen OptionList { height: auto; max-height: 20; }
    """

    def __init__(self, title: str, items: list[tuple[str, str]], current: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.items = items
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text)
            yield OptionList(*[Option(escape(label), id=i) for i, label in self.items], id="choices")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        ids = [i for i, _ in self.items]
        if self.current in ids:
            options.highlighted = ids.index(self.current)
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
