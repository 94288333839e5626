"""``[model] backend = "openai"``: ``engine generate`` (and anything using load_model: the chat app) talks to
an OpenAI-compatible server; here ``engine serve`` on loopback, so the remote path runs end to end."""

from __future__ import annotations

import json

import pytest

from engine.home import Home
from tests.conftest import add_user_profile
from tests.engine_cli import run_engine

QUESTION = "What is the capital of France?"


@pytest.fixture
def client_home(tmp_path, monkeypatch, server) -> Home:
    """A second home (the client's) whose profile 'remote' points at the test server."""
    home = Home.resolve(tmp_path / "client-home")
    monkeypatch.setenv("TUNELOOP_HOME", str(home.root))
    text = (
        f'system_prompt = "You are a helpful assistant."\n[model]\nid = "builtin:demo"\nbackend = "openai"\n'
        f'base_url = "{server.url}"\nremote_model = "base"\n[generation]\ndo_sample = false\nmax_new_tokens = 12\n'
    )
    return add_user_profile(home, "remote", text)


@pytest.mark.slow
def test_engine_generate_through_the_server_records_where_the_reply_came_from(client_home, server, client):
    code, out = run_engine("generate", "--profile", "remote", "--record", QUESTION)
    assert code == 0, out
    direct = (
        client.chat.completions.create(
            model="base", messages=[{"role": "user", "content": QUESTION}], max_tokens=12, temperature=0
        )
        .choices[0]
        .message.content
    )
    assert out.splitlines()[0] == direct  # the same greedy reply as asking the server directly
    events = [json.loads(x) for x in (client_home.feedback_dir("remote") / "events.jsonl").read_text().splitlines()]
    gen = events[-1]["generation"]
    assert gen["server"] == server.url and gen["server_model"] == "base" and gen["model"] == "builtin:demo"
    assert gen["completion_tokens"] <= 12 and gen["finish_reason"] in ("stop", "length")


def test_a_cancelled_remote_reply_stops_the_server(client_home, server):
    import time

    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_model

    profile = load_profile("remote", client_home)
    lm = load_model(profile, client_home)
    before = server.state.scheduler.counts["cancelled"]
    gen = lm.stream(
        [{"role": "user", "content": "Write a long story"}], GenerationParams.from_profile(profile, max_new_tokens=700)
    )
    for _piece in gen:
        gen.cancel()
    assert gen.record["stopped"] is True and gen.record["finish_reason"] == "cancelled"
    deadline = time.monotonic() + 30
    while server.state.scheduler.counts["cancelled"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_an_unreachable_server_is_one_sentence(tmp_path, monkeypatch):
    home = Home.resolve(tmp_path / "h")
    monkeypatch.setenv("TUNELOOP_HOME", str(home.root))
    add_user_profile(
        home, "remote", '[model]\nid = "builtin:demo"\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    code, out = run_engine("generate", "--profile", "remote", QUESTION)
    assert code == 2 and "cannot reach the model server at http://127.0.0.1:9/v1" in out and "Traceback" not in out


def test_a_missing_key_variable_is_one_sentence(tmp_path, monkeypatch):
    home = Home.resolve(tmp_path / "h")
    monkeypatch.setenv("TUNELOOP_HOME", str(home.root))
    monkeypatch.delenv("MY_SERVER_KEY", raising=False)
    add_user_profile(
        home,
        "remote",
        '[model]\nid = "builtin:demo"\nbackend = "openai"\n'
        'base_url = "http://127.0.0.1:9/v1"\napi_key_env = "MY_SERVER_KEY"\n',
    )
    code, out = run_engine("generate", "--profile", "remote", QUESTION)
    assert code == 2 and "$MY_SERVER_KEY, which is not set" in out
