"""One message of the conversation: a header line with its state, and its Markdown body.

The header shows who wrote it and every judgement on it, so a person can see at a glance what the
log holds: 👍/👎 (with tags), ✎ edited, ★ picked, ⏹ stopped, the sibling position "‹2/3›", the adapter
that wrote it and a reward score when best-of-n supplied one (``generation["reward_score"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownBlock, MarkdownStream

from tui.markdown_text import faithful


@dataclass(frozen=True)
class Shown:
    """What a MessageView displays (a pure function of the replayed message and its siblings)."""

    message_id: str | None
    role: str
    text: str
    header: str
    siblings: tuple[str, ...] = ()
    """Ids of this message and its siblings in order (left/right browse them without a round trip)."""

    @classmethod
    def of(cls, message, siblings: list[str], show_original: bool = False, unanswered: bool = False) -> "Shown":
        index, count = siblings.index(message.id), len(siblings)
        header = header_text(message, index, count, show_original)
        if unanswered:
            header += " " + UNANSWERED
        return cls(message.id, message.role, body_text(message, show_original), header, tuple(siblings))


UNANSWERED = ("[red]⚠ no reply[/red] [dim](the model did not answer it: r on it tries again; a new message "
              "takes its place)[/dim]")
QUEUED = "[b]You[/b] [yellow]queued[/yellow] [dim](sent as its own message when the reply above ends)[/dim]"
QUEUED_EARLY = "[b]You[/b] [yellow]queued[/yellow] [dim](sent once tuneloop has read the profile)[/dim]"
QUEUED_HELD = ("[b]You[/b] [yellow]queued, held[/yellow] [dim](a reply failed: Enter sends the queue, "
               "or it goes after your next message)[/dim]")


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
    critique = getattr(message, "critique", None)
    if critique:
        short = " ".join(critique.split())
        short = short if len(short) <= 60 else short[:59] + "…"
        parts.append(f"✍ revised: {escape(short)}")
        outcome = getattr(message, "outcome", None)
        if outcome is None:
            parts.append("[dim](p accept · e edit · v again · d discard)[/dim]")
        elif outcome == "discarded":
            parts.append("✗ discarded")
        else:
            parts.append("✓ accepted")
    if gen.get("stopped"):
        parts.append("⏹ stopped")
    if message.role == "assistant" and not body_text(message, show_original).strip():
        parts.append("[dim](empty reply)[/dim]")
    if gen.get("reward_score") is not None:
        parts.append(f"score {float(gen['reward_score']):.2f}")
    if message.role == "assistant" and gen.get("adapter"):
        parts.append(f"[dim]{escape(str(gen['adapter']))}[/dim]")
    return " ".join(parts)


BODY_LIMIT = 40_000
"""Characters of one message drawn on screen; the rest is one line saying how much is not shown
(``c`` copies all of it, ``e`` edits all of it). Building Textual's Markdown costs about 50 µs per
character on the 2-core dev machine (a 200 kB reply took 11 s to open, a 5 MB one minutes)."""
RICH_ABOVE = 8_000
"""A finished reply longer than this is drawn as one leaf widget (Rich's Markdown) instead of a
Textual Markdown tree of one widget per block: the same look, a fraction of the cost."""


def clip(text: str, limit: int = BODY_LIMIT) -> tuple[str, int]:
    """``(the part drawn, how many characters are not)``: cut at a line break near ``limit``."""
    if len(text) <= limit:
        return text, 0
    cut = text.rfind("\n", 0, limit)
    if cut < limit // 2:
        cut = limit
    return text[:cut], len(text) - cut


def more_note(hidden: int) -> str:
    return f"[dim]… {hidden:,} more characters not shown (c copies the whole message, e edits it)[/dim]"


FREEZE_CHARS = 2000
"""A streaming reply is split at block boundaries into chunks of about this many characters: each
append re-parses and re-lays out only the live chunk, so the cost of a token stays the same at token
10,000 as at token 10 (the finished reply is one Markdown again)."""


def _block_break(text: str, start: int) -> int:
    """The offset just after the last blank line in ``text[start:]`` that starts a new top-level block
    (the next line is not indented), or -1. Fences are checked by the caller."""
    pos = len(text)
    while True:
        i = text.rfind("\n\n", start, pos)
        if i < 0:
            return -1
        j = i + 2
        while j < len(text) and text[j] == "\n":
            j += 1
        if j < len(text) and text[j] not in " \t":
            return j
        pos = i


class MarkdownFeed:
    """Feeds a growing reply into Markdown through a MarkdownStream (it batches fragments, so a fast
    model does not queue one re-render per token). Takes the whole text so far each time; only the
    new characters are handed on (O(size of the new piece) per call, not of the whole reply).

    With ``split=True`` (the chat's streaming reply) the Markdown only holds the newest chunk:
    once the live one holds :data:`FREEZE_CHARS` and a new top-level block starts outside a code
    fence, its text is frozen into a static widget before it and the Markdown starts over with the
    rest (the finished reply is shown as one Markdown again by the chat)."""

    def __init__(self, markdown: Markdown, split: bool = False) -> None:
        self.markdown = markdown
        self.split = split
        self.text = ""
        self._live = ""  # what the live widget holds
        self._fences = 0  # ``` seen in the live widget's text (odd: inside a code block)
        self._stream: MarkdownStream | None = None
        self.frozen: list[Static] = []
        self.frozen_texts: list[str] = []
        """The text of each frozen chunk, in order (these plus the live Markdown's source = ``text``)."""

    async def show(self, text: str, final: bool = False) -> None:
        """Show ``text`` (the reply so far, or all of it with ``final``), rewritten by
        :func:`tui.markdown_text.faithful` so every character and line break the model wrote is seen."""
        text = faithful(text, final)
        old = self.text
        if text.startswith(old):  # a memcmp: microseconds even for a long reply
            delta = text[len(old):]
            if delta:
                await self._append(delta)
        else:  # the decoder revised earlier text (rare with byte-level BPE): redraw once
            await self.stop()
            await self._reset(text)
        self.text = text

    async def _append(self, delta: str) -> None:
        if self.split and len(self._live) >= FREEZE_CHARS:
            combined = self._live + delta
            cut = _block_break(combined, max(len(self._live) - 2, 0))
            if cut >= len(self._live) and (self._fences + delta[: cut - len(self._live)].count("```")) % 2 == 0:
                head = delta[: cut - len(self._live)]
                await self._write(head)
                await self.stop()
                await self._next_widget()
                delta = delta[len(head):]
        await self._write(delta)

    async def _write(self, piece: str) -> None:
        if not piece:
            return
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
        self._live += piece
        self._fences += piece.count("```")
        await self._stream.write(piece)

    async def _next_widget(self) -> None:
        """Freeze the live text: one leaf widget (Rich's Markdown rendering) takes its place before the
        live Markdown, which starts over empty. A leaf, because Textual lays out every widget of the
        screen on each layout change: a Markdown per chunk would keep that cost growing with the reply."""
        from rich.markdown import Markdown as RichMarkdown

        frozen = Static(RichMarkdown(self._live), classes="frozen")
        await cast(Widget, self.markdown.parent).mount(frozen, before=self.markdown)
        self.frozen.append(frozen)
        self.frozen_texts.append(self._live)
        self._live, self._fences = "", 0
        await self.markdown.update("")

    async def _reset(self, text: str) -> None:
        for frozen in self.frozen:
            await frozen.remove()
        self.frozen, self.frozen_texts = [], []
        self._live, self._fences = text, text.count("```")
        await self.markdown.update(text)

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
    MessageView > Markdown > MarkdownBlock.-last { margin-bottom: 0; }
    MessageView MarkdownFence { margin: 0 0 1 0; }
    MessageView > .frozen { height: auto; margin: 0 0 1 0; }
    MessageView > .body { height: auto; }
    MessageView > .more { height: auto; }
    """
    # Not ``MarkdownBlock:last-child``: an order pseudo-class makes Textual restyle every block of
    # the message each time a block is mounted (quadratic while a reply streams). The last block is
    # marked with ``-last`` instead, once the Markdown has been (re)built.

    def __init__(self, shown: Shown, *, stream_key: str | None = None, queued_key: str | None = None) -> None:
        super().__init__(classes=f"-{shown.role}")
        self.shown = shown
        self.stream_key = stream_key
        self.queued_key = queued_key
        """Set for a message typed while a reply was generating: not sent yet, shown after everything."""
        self._feed: MarkdownFeed | None = None

    @property
    def message_id(self) -> str | None:
        return self.shown.message_id

    def compose(self) -> ComposeResult:
        yield Static(self.shown.header, classes="header")
        yield from self._body()

    def _kind(self) -> str:
        """How the body is drawn: ``plain`` (what the person typed: line breaks and indentation kept,
        no Markdown), ``markdown`` (a reply), ``rich`` (a long reply: one leaf widget)."""
        if self.shown.role != "assistant":
            return "plain"
        if self.stream_key is None and len(self.shown.text) > RICH_ABOVE:
            return "rich"
        return "markdown"

    def _body(self):
        text, hidden = clip(self.shown.text)
        kind = self._kind()
        if kind == "plain":
            yield Static(Text(text), classes="body")
        elif kind == "rich":
            from rich.markdown import Markdown as RichMarkdown

            yield Static(RichMarkdown(faithful(text)), classes="body")
        else:
            yield Markdown(faithful(text))
        if hidden:
            yield Static(more_note(hidden), classes="more")

    @property
    def body_source(self) -> str:
        """The text the body draws (Markdown source for a reply) plus the "… more" line if any."""
        text, hidden = clip(self.shown.text)
        return text + ("\n" + Text.from_markup(more_note(hidden)).plain if hidden else "")

    async def show(self, shown: Shown) -> None:
        """Update the header and, only if the text changed, the body (Markdown re-parses are costly)."""
        old, old_kind, self.shown = self.shown, self._kind(), shown
        if shown.header != old.header:
            self.query_one(".header", Static).update(shown.header)
        if shown.text == old.text:
            return
        if old_kind == self._kind() == "markdown" and len(shown.text) <= BODY_LIMIT and len(old.text) <= BODY_LIMIT:
            await self.query_one(Markdown).update(faithful(shown.text))
            return
        await self.remove_children([w for w in self.children if not w.has_class("header")])
        await self.mount_all(list(self._body()))

    def on_markdown_table_of_contents_updated(self, event: Markdown.TableOfContentsUpdated) -> None:
        """Posted by Markdown after each full update: its blocks exist now. (While a reply streams,
        blocks keep coming: :meth:`stop_stream` marks the last one.)"""
        if self.stream_key is None:
            self.mark_last_block()

    def mark_last_block(self) -> None:
        markdowns = list(self.query_children(Markdown))
        if not markdowns:
            return
        blocks = [b for b in markdowns[-1].children if isinstance(b, MarkdownBlock)]
        for block in blocks[:-1]:
            if block.has_class("-last"):
                block.remove_class("-last")
        if blocks and not blocks[-1].has_class("-last"):
            blocks[-1].add_class("-last")

    async def stream_to(self, text: str) -> None:
        """Show the reply streamed so far."""
        if self._feed is None:
            self._feed = MarkdownFeed(self.query_one(Markdown), split=True)
        await self._feed.show(text)

    async def stop_stream(self) -> None:
        if self._feed is not None:
            await self._feed.stop()
            self.mark_last_block()
