"""One line at the bottom: profile, model, adapter, device, live tokens/s, and loading progress."""

from __future__ import annotations

from rich.markup import escape
from textual.reactive import reactive
from textual.widgets import Static


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    profile: reactive[str] = reactive("")
    model: reactive[str] = reactive("")
    adapter: reactive[str] = reactive("base")
    device: reactive[str] = reactive("")
    load_state: reactive[str] = reactive("")
    """Empty once the model is ready; else e.g. 'loading weights 40%' or 'load failed'."""
    tokens_per_s: reactive[float | None] = reactive(None)
    """Decoding speed (the wait for the first token not counted)."""
    first_token_s: reactive[float | None] = reactive(None)
    """Seconds to the first token of the last reply (prompt processing, a server's queue)."""

    def render(self) -> str:
        parts = [f"[b]{escape(self.profile)}[/b]"]
        if self.load_state:  # right after the profile: still visible on a narrow terminal
            parts.append(f"[yellow]{escape(self.load_state)}[/yellow]")
        if self.model or self.adapter:  # (both empty before the profile is read: the first frame)
            parts += [escape(self.model) or "-", f"adapter: {escape(self.adapter)}"]
        if self.device:
            parts.append(escape(self.device))
        if self.tokens_per_s is not None:
            speed = f"{self.tokens_per_s:.1f} tok/s"
            if self.first_token_s is not None:
                speed += f", first token {self.first_token_s:.2f} s"
            parts.append(speed)
        return " │ ".join(parts)
