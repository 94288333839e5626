"""One reply at a time, a bounded queue (429 when full), and a client that leaves stops its reply."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serve.conftest import start_server

LONG = [{"role": "user", "content": "Write a long story"}]  # the demo model's greedy reply runs ~780 tokens


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def replies_in_log(state) -> list[dict]:
    lines = state.recorder.log.path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("role") == "assistant"]


@pytest.mark.slow
def test_four_concurrent_requests_all_complete_one_at_a_time(client, server):
    def ask(i):
        return client.chat.completions.create(
            model="demo", max_tokens=8, temperature=0, messages=[{"role": "user", "content": f"Question {i}"}]
        )

    before = server.state.scheduler.counts["finished"]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(ask, range(4)))
    ids = {r.model_extra["reply_id"] for r in results}
    assert len(ids) == 4 and all(r.choices[0].message.content is not None for r in results)
    wait_for(lambda: server.state.scheduler.counts["finished"] - before == 4)  # counted just after the answer
    logged = {e["id"] for e in replies_in_log(server.state)}
    assert ids <= logged


def test_a_client_that_disconnects_mid_stream_stops_its_reply(server):
    state = server.state
    before = state.scheduler.counts["cancelled"]
    body = {"model": "demo", "messages": LONG, "max_tokens": 700, "temperature": 0, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=30) as http,
        http.stream("POST", "/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        reply_id = json.loads(first[6:])["id"].removeprefix("chatcmpl-")
    # leaving the block closed the connection mid-reply
    wait_for(lambda: state.scheduler.counts["cancelled"] > before and not state.scheduler.busy)
    reply = next(e for e in replies_in_log(state) if e["id"] == reply_id)
    gen = reply["generation"]
    assert gen["stopped"] is True and gen["finish_reason"] == "cancelled"
    assert gen["completion_tokens"] < 700


@pytest.mark.slow
def test_a_non_streamed_request_whose_client_gives_up_is_cancelled(server):
    state = server.state
    before = state.scheduler.counts["cancelled"]
    body = {"model": "demo", "messages": LONG, "max_tokens": 700, "temperature": 0}
    with httpx.Client(base_url=server.url, timeout=0.5) as http, pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=body)
    wait_for(lambda: state.scheduler.counts["cancelled"] > before and not state.scheduler.busy)
    reply = replies_in_log(state)[-1]
    assert reply["generation"]["stopped"] is True and reply["generation"]["completion_tokens"] < 700


@pytest.mark.slow
def test_a_full_queue_answers_429_in_openais_shape(serve_home, demo_lm):
    import openai

    srv, state = start_server(serve_home, demo_lm, max_waiting=0)
    with srv:
        body = {"model": "demo", "messages": LONG, "max_tokens": 700, "temperature": 0, "stream": True}
        http = httpx.Client(base_url=srv.url, timeout=30)
        with http, http.stream("POST", "/chat/completions", json=body) as resp:
            lines = resp.iter_lines()  # kept: a dropped iterator closes the stream
            next(lines)
            assert state.scheduler.busy
            client = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0)
            with pytest.raises(openai.RateLimitError) as info:
                client.chat.completions.create(model="demo", messages=LONG, max_tokens=2)
            assert info.value.status_code == 429 and info.value.body["code"] == "queue_full"
        wait_for(lambda: not state.scheduler.busy)
        # the model is free again: the next request is served
        ok = client.chat.completions.create(model="demo", messages=LONG, max_tokens=2, temperature=0)
        assert ok.usage.completion_tokens <= 2


@pytest.mark.slow
def test_a_request_that_leaves_while_waiting_never_generates(serve_home, demo_lm):
    srv, state = start_server(serve_home, demo_lm, max_waiting=4)
    with srv:
        body = {"model": "demo", "messages": LONG, "max_tokens": 700, "temperature": 0, "stream": True}
        logged_before = len(replies_in_log(state))
        http = httpx.Client(base_url=srv.url, timeout=30)
        with http, http.stream("POST", "/chat/completions", json=body) as resp:
            lines = resp.iter_lines()
            next(lines)
            with httpx.Client(base_url=srv.url, timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
                impatient.post("/chat/completions", json={**body, "stream": False})
            wait_for(lambda: state.scheduler.counts["dropped_waiting"] == 1)
            assert state.scheduler.waiting == 0 and state.scheduler.busy
        wait_for(lambda: not state.scheduler.busy)
        assert len(replies_in_log(state)) == logged_before + 1  # only the first (stopped) reply
