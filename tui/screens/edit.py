"""Edit a reply: a full-screen editor prefilled with its current text; ctrl+s saves, Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea


class EditScreen(ModalScreen[str | None]):
    """Dismisses with the corrected text, or None when cancelled or unchanged."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="edit.save", priority=True, tooltip="Save the corrected reply"),
        Binding("escape", "dismiss(None)", "Cancel", id="edit.cancel", priority=True),
    ]

    DEFAULT_CSS = """
    EditScreen { align: center middle; }
    EditScreen > Vertical { width: 90%; height: 80%; border: thick $accent; background: $surface; }
    EditScreen .hint { height: 1; color: $text-muted; padding: 0 1; }
    EditScreen TextArea { height: 1fr; }
    """

    def __init__(self, text: str) -> None:
        super().__init__()
        self.original = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Edit the reply — ctrl+s saves, Esc cancels, F7 selects all", classes="hint")
            yield TextArea(self.original, soft_wrap=True, id="editor")

    def on_mount(self) -> None:
        self.query_one("#editor", TextArea).focus()

    def action_save(self) -> None:
        # A priority binding runs before keys typed just before it reach the editor: read the text
        # after them (in the editor's own queue), so a fast "...text ctrl+s" saves every character.
        self.query_one("#editor", TextArea).call_later(self._save_typed)

    def _save_typed(self) -> None:
        if not self.is_current:  # already saved or closed (ctrl+s twice in a burst)
            return
        text = self.query_one("#editor", TextArea).text
        self.dismiss(text if text.strip() and text != self.original else None)
