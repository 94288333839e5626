"""Small helpers for driving the app in pilot tests: wait for conditions, read the log back."""

from __future__ import annotations

import asyncio

from engine.feedback import FeedbackLog


async def wait_for(pilot, condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until ``condition()`` holds (fails the test after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def wait_idle(pilot, app, timeout: float = 30.0) -> None:
    """Wait until the model is loaded and no reply is queued or generating."""
    await wait_for(pilot, lambda: app.model.lm is not None and not app.replies.busy, timeout, "the app to be idle")
    await pilot.pause()


def events(home, profile: str = "demo", type_: str | None = None) -> list[dict]:
    evs = FeedbackLog(home, profile).read().events
    return [e for e in evs if type_ is None or e["type"] == type_]


def screen_text(app) -> str:
    """Everything the chat column shows: each message's header line and its body (Markdown source for
    a reply, the text as typed for a user message, and the "… more characters" line of a long one)."""
    from textual.widgets import Markdown, Static

    parts = []
    for view in app.chat.views():
        headers = view.query(".header")
        if not headers:  # a view the column just mounted composes its children on the next tick
            parts.append("(composing)")
            continue
        parts.append(str(headers.first(Static).render()))
        if view.stream_key is not None or not hasattr(view, "body_source"):
            bodies = view.query(Markdown)
            parts.append(bodies.first().source if bodies else "(composing)")
        else:
            parts.append(view.body_source)
    return "\n".join(parts)


async def send(pilot, text: str) -> None:
    app = pilot.app
    app.composer.focus()
    app.composer.text = text
    await pilot.press("enter")


def plain(widget) -> str:
    """The text a widget shows on screen right now (its rendered lines)."""
    from textual.geometry import Region

    width, height = widget.size
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, width, height)))


def burst(pilot, *keys: str) -> None:
    """Queue ``keys`` with the driver all at once, as a terminal delivers a fast typist's or
    ``tmux send-keys``' input: every key event is posted before the app handles the first one
    (``pilot.press`` waits for the app to go idle after each key, which hides ordering bugs).
    A key longer than one character is a key name ("enter", "ctrl+n"); ``"text:abc"`` types a, b, c."""
    import unicodedata

    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    app = pilot.app
    names: list[str] = []
    for key in keys:
        names.extend(key[5:] if key.startswith("text:") else [key])
    for key in names:
        if len(key) == 1 and not key.isalnum():
            key = _character_to_key(key)
        original = REPLACED_KEYS.get(key, key)
        try:
            char = unicodedata.lookup(_get_unicode_name_from_key(original))
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        app._driver.send_message(event)


def screen_lines(app) -> str:
    """The whole terminal as the person sees it now (every line, as plain text)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def fake_finished_run(home, run_id: str, promoted: bool = True, evaluation: dict | None = None,
                      reason: str | None = None) -> None:
    """A finished finetune run as the engine leaves it (manifest, adapter config, report.json), without
    training: for panels that list runs."""
    import json

    run = home.run_dir("demo", run_id)
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text('{"base_model_name_or_path": "builtin:demo"}')
    header = b"{}"  # a safetensors file with no tensors (the app checks the file is there, never loads it here)
    (run / "adapter" / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    manifest = {"command": "finetune", "method": "sft", "plan": ["sft"], "run_id": run_id,
                "data": {"fingerprint": "fake"}, "settings": {}, "profile_settings": {}, "base_model": {},
                "counts": {}, "rows": {"sft": {"train": 1, "eval": 0}}, "rl": {}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    report = {"run_id": run_id, "method": "sft", "eval": evaluation or {"new": {"loss": 1.0}}, "promoted": promoted}
    if reason:
        report["reason"] = reason
    (run / "report.json").write_text(json.dumps(report))
