"""The conversation on screen: a scrolling column of MessageViews with one selected message.

Judging keys act on the selected message. They live here (not on the app) so the footer shows
them exactly when the message list has focus; ctrl+up/ctrl+down on the app move the selection and
focus this list from the composer. Each key posts :class:`ChatView.Act` up to the app, which writes
the event; the app then pushes the replayed state back down with :meth:`sync`.

The selection is state of this widget, changed at once by the key that moves it (up/down, and
left/right among siblings, whose ids come down with each entry): keys in one burst are handled
before any Act reaches the app, so each key must see the selection the keys before it left. Every
Act carries the message it was pressed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message

if TYPE_CHECKING:  # imported with the first message shown (Markdown and its parser: not for the first frame)
    from tui.widgets.message_view import MessageView, Shown

CHAT_BINDINGS: list[BindingType] = [
    Binding("up", "move(-1)", "Up", id="chat.up", show=False, tooltip="Select the previous message"),
    Binding("down", "move(1)", "Down", id="chat.down", show=False, tooltip="Select the next message"),
    Binding("plus,equals_sign", "act('like')", "👍", id="chat.like", tooltip="Thumbs up (again: clear)"),
    Binding("minus", "act('dislike')", "👎", id="chat.dislike", tooltip="Thumbs down (again: clear)"),
    Binding("t", "act('reason')", "Tags", id="chat.reason", tooltip="Reason tags and a comment"),
    Binding("e", "act('edit')", "Edit", id="chat.edit", tooltip="Correct the reply in an editor"),
    Binding("o", "act('original')", "Orig", id="chat.original", show=False, tooltip="Toggle original/edited text"),
    Binding("r", "act('regenerate')", "Regen", id="chat.regenerate", tooltip="Generate another reply (sibling)"),
    Binding("left,left_square_bracket", "act('prev')", "‹", id="chat.prev", tooltip="Previous sibling reply"),
    Binding("right,right_square_bracket", "act('next')", "›", id="chat.next", tooltip="Next sibling reply"),
    Binding("b", "act('best_of')", "Best of n", id="chat.best_of", show=False,
            tooltip="Best of n: n new replies (profile's generation.best_of, else 3) scored by the reward model, "
                    "its favourite first"),
    Binding("p", "act('pick')", "Pick", id="chat.pick", tooltip="Pick this reply as the best of its siblings"),
    Binding("v", "act('critique')", "Critique", id="chat.critique", show=False,
            tooltip="Say what is wrong: the model revises the reply (a sibling marked revised); on a revision: "
                    "another revision"),
    Binding("d", "act('discard')", "Discard", id="chat.discard", show=False,
            tooltip="Discard the selected revision (p accepts it, e edits it)"),
    Binding("a", "act('compare')", "A/B", id="chat.compare", tooltip="Blind A/B: two new replies side by side"),
    Binding("c", "act('copy')", "Copy", id="chat.copy", tooltip="Copy the message to the clipboard"),
    Binding("escape,i", "act('compose')", "Write", id="chat.compose", show=False, tooltip="Back to the composer"),
]


class ChatView(VerticalScroll, can_focus=True):
    BINDINGS = CHAT_BINDINGS

    DEFAULT_CSS = """
    ChatView { height: 1fr; }
    ChatView > MessageView.-selected { background: $boost; border-left: thick $accent; }
    ChatView:focus > MessageView.-selected { border-left: thick $warning; }
    ChatView > MessageView.-user > .header { color: $primary-lighten-3; }
    """

    @dataclass
    class Act(Message):
        """The person pressed a judging key on message ``message_id`` (None: nothing selected)."""

        action: str
        message_id: str | None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.selected_id: str | None = None
        self._siblings: dict[str, tuple[str, ...]] = {}  # message id -> it and its siblings, in order
        self._pin_end = False  # keep the newest text in view as blocks render and replies stream

    # ---- state from the app --------------------------------------------------------------------
    def views(self) -> list[MessageView]:
        return cast("list[MessageView]", list(self.query_children("MessageView")))

    async def sync(self, entries: list[Shown]) -> None:
        """Make the column show ``entries``: keep the matching prefix, update it, replace the rest."""
        from tui.widgets.message_view import MessageView

        views = [v for v in self.views() if v.stream_key is None and v.queued_key is None]
        streaming = [v for v in self.views() if v.stream_key is not None or v.queued_key is not None]  # stay last
        keep = 0
        while keep < min(len(views), len(entries)) and views[keep].message_id == entries[keep].message_id:
            await views[keep].show(entries[keep])
            keep += 1
        if views[keep:]:
            await self.remove_children(views[keep:])
        if entries[keep:]:
            new = [MessageView(e) for e in entries[keep:]]
            if streaming:
                await self.mount_all(new, before=streaming[0])
            else:
                await self.mount_all(new)
        ids = [e.message_id for e in entries]
        self._siblings = {sib: e.siblings for e in entries for sib in e.siblings}
        if self.selected_id not in ids and self.selected_id not in self._siblings:
            # (a sibling of a shown message stays selected: left/right chose it, the app shows it next)
            assistants = [e.message_id for e in entries if e.role == "assistant"]
            self.selected_id = assistants[-1] if assistants else (ids[-1] if ids else None)
        self._mark_selected()
        if entries[keep:]:
            self.pin_end()

    async def begin_stream(self, key: str, header: str) -> MessageView:
        from tui.widgets.message_view import MessageView, Shown

        view = MessageView(Shown(None, "assistant", "", header), stream_key=key)
        queued = self.queued_views()
        if queued:
            await self.mount(view, before=queued[0])
        else:
            await self.mount(view)
        self.pin_end()
        return view

    def queued_views(self) -> list[MessageView]:
        return [v for v in self.views() if v.queued_key is not None]

    async def show_queued(self, entries: list[tuple[str, str, str]]) -> None:
        """Messages typed while a reply generates, as ``(key, text, header)``: shown last, each its own turn."""
        from tui.widgets.message_view import MessageView, Shown

        views = self.queued_views()
        if [v.queued_key for v in views] == [key for key, _, _ in entries]:
            for view, (_, text, header) in zip(views, entries):
                await view.show(Shown(None, "user", text, header))
            return
        if views:
            await self.remove_children(views)
        if entries:
            await self.mount_all([MessageView(Shown(None, "user", text, header), queued_key=key)
                                  for key, text, header in entries])
            self.pin_end()

    def pin_end(self) -> None:
        """Follow the end of the conversation (Markdown blocks get their height a few frames later)."""
        self._pin_end = True
        self.scroll_end(animate=False)

    def watch_virtual_size(self) -> None:
        if self._pin_end:
            self.call_after_refresh(self.scroll_end, animate=False)

    def on_mouse_scroll_up(self) -> None:
        self._pin_end = False  # the person scrolls back to read: stop following

    async def end_streams(self) -> None:
        """Remove the streaming placeholder (the stored message replaces it on the next sync)."""
        for view in self.views():
            if view.stream_key is not None:
                await view.stop_stream()
                await view.remove()

    def stream_view(self, key: str) -> MessageView | None:
        for view in self.views():
            if view.stream_key == key:
                return view
        return None

    # ---- selection -----------------------------------------------------------------------------
    def _holds(self, view: MessageView, message_id: str | None) -> bool:
        """``view`` shows ``message_id``, or the sibling in its place until the app shows that one."""
        return message_id is not None and (view.message_id == message_id or message_id in view.shown.siblings)

    def _mark_selected(self) -> None:
        for view in self.views():
            view.set_class(self._holds(view, self.selected_id), "-selected")

    def select(self, message_id: str | None) -> None:
        self._pin_end = False
        self.selected_id = message_id
        self._mark_selected()
        for view in self.views():
            if self._holds(view, message_id):
                self.scroll_to_widget(view, animate=False)

    def action_move(self, delta: int) -> None:
        views = [v for v in self.views() if v.message_id is not None]
        if not views:
            return
        at = [i for i, v in enumerate(views) if self._holds(v, self.selected_id)]
        i = at[0] if at else len(views)
        self.select(views[max(0, min(len(views) - 1, i + delta))].message_id)

    def action_act(self, action: str) -> None:
        if action in ("prev", "next") and self.selected_id is not None:
            self.step_sibling(-1 if action == "prev" else 1)
            return
        self.post_message(self.Act(action, self.selected_id))

    def step_sibling(self, delta: int) -> None:
        """Select the previous/next sibling (wrapping) now; the app is asked to show it (Act "show")."""
        sibs = self._siblings.get(self.selected_id or "", ())
        if len(sibs) < 2:
            return
        self.selected_id = sibs[(sibs.index(self.selected_id) + delta) % len(sibs)]
        self.post_message(self.Act("show", self.selected_id))
