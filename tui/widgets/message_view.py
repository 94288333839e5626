"""One message of the conversation: a header line with its state, and its Markdown body.

The header shows who wrote it and every judgement on it, so a person can see at a glance what the
log holds: 👍/👎 (with tags), ✎ edited, ★ picked, ⏹ stopped, the sibling position "‹2/3›", the adapter
that wrote it and a reward score when best-of-n supplied one (``generation["reward_score"]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static


@dataclass(frozen=True)
class Shown:
    """What a MessageView displays (a pure function of the replayed message and its siblings)."""

    message_id: str | None
    role: str
    text: str
    header: str

    @classmethod
    def of(cls, message, index: int, count: int, show_original: bool = False) -> "Shown":
        return cls(message.id, message.role, body_text(message, show_original),
                   header_text(message, index, count, show_original))


def body_text(message, show_original: bool = False) -> str:
    if message.edited is not None and not show_original:
        return message.edited
    return message.content


def header_text(message, index: int, count: int, show_original: bool = False) -> str:
    if message.role == "user":
        parts = ["[b]You[/b]"]
    else:
        parts = ["[b]Assistant[/b]"]
    gen = message.generation or {}
    if count > 1:
        parts.append(f"‹{index + 1}/{count}›")
    if message.rating > 0:
        parts.append("👍")
    elif message.rating < 0:
        parts.append("👎")
    if message.tags:
        parts.append(escape("[" + ", ".join(message.tags) + "]"))
    if message.comment:
        parts.append(f"💬 {escape(message.comment)}")
    if message.edited is not None:
        parts.append("✎ original" if show_original else "✎ edited")
    if message.picked:
        parts.append("★ picked")
    if gen.get("stopped"):
        parts.append("⏹ stopped")
    if gen.get("reward_score") is not None:
        parts.append(f"score {float(gen['reward_score']):.2f}")
    if message.role == "assistant" and gen.get("adapter"):
        parts.append(f"[dim]{escape(str(gen['adapter']))}[/dim]")
    return " ".join(parts)


class MarkdownFeed:
    """Feeds a growing reply into a Markdown widget through a MarkdownStream (it batches fragments,
    so a fast model does not queue one re-render per token). Takes the whole text so far each time."""

    def __init__(self, markdown: Markdown) -> None:
        self.markdown = markdown
        self.text = ""
        self._stream = None

    async def show(self, text: str) -> None:
        if text.startswith(self.text):
            delta = text[len(self.text):]
            if delta:
                if self._stream is None:
                    self._stream = Markdown.get_stream(self.markdown)
                await self._stream.write(delta)
        else:  # the decoder revised earlier text (rare with byte-level BPE): redraw once
            await self.stop()
            await self.markdown.update(text)
        self.text = text

    async def stop(self) -> None:
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None


class MessageView(Vertical):
    """A message on screen; ``message_id`` is None while its reply is still streaming."""

    DEFAULT_CSS = """
    MessageView { height: auto; padding: 0 1; margin: 0 0 1 0; }
    MessageView > .header { height: auto; color: $text-muted; }
    MessageView > Markdown { margin: 0; padding: 0; }
    MessageView > Markdown > MarkdownBlock:last-child { margin-bottom: 0; }
    MessageView MarkdownFence { margin: 0 0 1 0; }
    """

    def __init__(self, shown: Shown, *, stream_key: str | None = None) -> None:
        super().__init__(classes=f"-{shown.role}")
        self.shown = shown
        self.stream_key = stream_key
        self._feed: MarkdownFeed | None = None

    @property
    def message_id(self) -> str | None:
        return self.shown.message_id

    def compose(self) -> ComposeResult:
        yield Static(self.shown.header, classes="header")
        yield Markdown(self.shown.text)

    async def show(self, shown: Shown) -> None:
        """Update the header and, only if the text changed, the body (Markdown re-parses are costly)."""
        old, self.shown = self.shown, shown
        if shown.header != old.header:
            self.query_one(".header", Static).update(shown.header)
        if shown.text != old.text:
            await self.query_one(Markdown).update(shown.text)

    async def stream_to(self, text: str) -> None:
        """Show the reply streamed so far."""
        if self._feed is None:
            self._feed = MarkdownFeed(self.query_one(Markdown))
        await self._feed.show(text)

    async def stop_stream(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
