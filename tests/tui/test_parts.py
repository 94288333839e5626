"""The app's parts (tui/host.py) run without Textual: a small fake host stands in for the app, so what a
judging key or a sent message does is checked directly (the event written, the notice shown, the worker
started), with the reply worker's body run in the test's own thread."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

from engine.errors import UserError
from engine.profiles import load_profile
from tests.tui.fakes import FakeGenerator
from tests.tui.helpers import events
from tui.host import SaveOutcome
from tui.judging import JudgingController
from tui.messages import ReplyFinished, ReplyProgress
from tui.replies import ReplyController
from tui.session import ChatSession


class FakeChat:
    def __init__(self) -> None:
        self.selected_id: str | None = None
        self.streams: list[tuple[str, str]] = []

    async def begin_stream(self, key: str, header: str) -> None:
        self.streams.append((key, header))

    def stream_view(self, key: str) -> None:
        return None

    async def end_streams(self) -> None:
        self.streams.clear()


class FakeHost:
    """What tui/host.py declares, and nothing else: the parts cannot reach past it."""

    def __init__(self, home, profile_name: str = "demo") -> None:
        self.home = home
        self.profile = load_profile(profile_name, home)
        self.session = ChatSession(home, self.profile.name)
        self.chat = FakeChat()
        self.composer = SimpleNamespace(text="", give_back=lambda text: None, clear=lambda: None)
        self.status = SimpleNamespace(tokens_per_s=None, first_token_s=None)
        self.notices: list[tuple[str, str]] = []
        self.posted: list = []
        self.workers: list[tuple[str, object]] = []
        self.screens: list = []
        self.refreshed = 0

    @contextmanager
    def saving(self):
        outcome = SaveOutcome()
        try:
            yield outcome
        except UserError as exc:
            outcome.ok = False
            self.notices.append(("error", str(exc)))

    def notify(self, message, *, title="", severity="information", timeout=None, markup=True) -> None:
        self.notices.append((severity, message))

    async def refresh_chat(self) -> None:
        self.refreshed += 1

    def post_message(self, message) -> bool:
        self.posted.append(message)
        return True

    def in_thread(self, work, group: str, name: str) -> None:
        self.workers.append((group, work))

    def push_screen(self, screen, callback=None):
        self.screens.append(screen)

    def copy_to_clipboard(self, text: str) -> None:
        pass

    def exit(self, *args, **kwargs) -> None:
        pass


async def test_a_thumb_on_a_reply_is_written_and_on_a_user_message_is_refused_with_a_notice(home):
    host = FakeHost(home)
    user = host.session.add_user("hi")
    reply = host.session.add_reply(user.id, "hello", {"model": "fake"})
    model = SimpleNamespace(lm=None)
    judging = JudgingController(host, ReplyController(host, model), model)

    await judging.act("like", user.id)
    assert host.notices == [("warning", "Select a reply (ctrl+up/down) to judge it.")]
    assert events(home, type_="rating") == []

    await judging.act("like", reply.id)
    await judging.act("like", reply.id)  # the same thumb again clears it
    assert [(e["message_id"], e["value"]) for e in events(home, type_="rating")] == [(reply.id, 1), (reply.id, 0)]
    assert host.refreshed == 3


async def test_a_message_sent_before_the_model_loads_is_answered_once_it_has(home):
    host = FakeHost(home)
    model = SimpleNamespace(lm=None)
    replies = ReplyController(host, model)

    assert await replies.send_now(host.session.conversation_id, "hi")
    assert replies.busy and host.workers == []  # no model yet: the reply waits
    assert "waiting for the model to load" in host.chat.streams[0][1]

    model.lm = FakeGenerator(["hello there"])
    await replies.pump()
    ((group, work),) = host.workers
    assert group == "reply"
    work()  # the worker's body, here in the test's thread
    finished = host.posted[-1]
    assert isinstance(finished, ReplyFinished) and finished.text == "hello there"
    assert any(isinstance(m, ReplyProgress) for m in host.posted)

    await replies.finished(finished)
    assert not replies.busy
    user, answer = events(home, type_="message")
    assert (user["content"], answer["content"]) == ("hi", "hello there")
    assert answer["parent_id"] == user["id"] and answer["generation"]["profile"] == "demo"
    assert host.chat.selected_id == answer["id"]
