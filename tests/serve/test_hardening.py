"""``engine serve`` works only for who may use it, and no client can hold it: the key before the body,
bounded bodies and reads, a connection limit, prompts within the context, departed clients stop their
reply, bad text is a 4xx naming the field. Everything on loopback, bounded in count and time."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from engine.serve.guard import MIB, Limits
from tests.serve.conftest import start_server
from tests.serve.test_queue import wait_for

KEY = "clé-ключ-🔑-k"  # non-ASCII: clients send it as UTF-8 bytes
QUESTION = [{"role": "user", "content": "Tell me about the sea"}]
SMALL = Limits(max_body_bytes=1 * MIB, read_timeout_s=0.5, body_timeout_s=3.0, max_connections=8)


@pytest.fixture(scope="module")
def keyed(serve_home, demo_lm):
    srv, state = start_server(serve_home, demo_lm, api_key=KEY, limits=SMALL)
    with srv:
        srv.state = state
        yield srv


@pytest.fixture(scope="module")
def open_server(serve_home, demo_lm):
    srv, state = start_server(serve_home, demo_lm, limits=SMALL)
    with srv:
        srv.state = state
        yield srv


def auth(key: str = KEY) -> dict:
    return {"Authorization": b"Bearer " + key.encode("utf-8")}


def raw(port: int, data: bytes, timeout: float = 10.0) -> tuple[bytes, float]:
    """Send ``data`` on a fresh connection (without closing our side) and read until the server closes
    or answers; (response bytes, seconds it took)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
    return out, time.monotonic() - start


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def body_of(response: bytes) -> dict:
    return json.loads(response.partition(b"\r\n\r\n")[2])


def test_the_key_is_checked_before_the_body_is_read(keyed):
    port = keyed.port
    # a body that is not JSON, from a client without the key: 401, not "not valid JSON"
    with httpx.Client(base_url=keyed.url, timeout=10) as http:
        r = http.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = http.post("/feedback", content=b"{not json", headers=auth("wrong"))
        assert r.status_code == 401
    # 150 MiB announced, none of it sent: the answer comes at once, the body is never waited for
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    out, took = raw(port, head + b"Content-Length: %d\r\n\r\n{" % (150 * MIB))
    assert status_of(out) == 401 and took < 2 and b"connection: close" in out.lower()
    # with the key, the size is refused before reading: 413
    key_header = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
    out, took = raw(port, head + key_header + b"Content-Length: %d\r\n\r\n{" % (150 * MIB))
    assert status_of(out) == 413 and took < 2
    assert body_of(out)["error"]["code"] == "request_too_large"


def test_a_chunked_body_past_the_limit_is_a_413(open_server):
    def chunks():
        for _ in range(40):  # 2.5 MiB in all against a 1 MiB limit
            yield b" " * (64 * 1024)

    with httpx.Client(base_url=open_server.url, timeout=10) as http:
        r = http.post("/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text


def test_an_empty_bearer_and_a_non_ascii_key(keyed):
    for value in (b"Bearer ", b"Bearer", b"", b"Basic abc", b"Bearer " + KEY.encode("utf-8") + b"x"):
        # raw: the client library refuses to send some of these at all
        out, _ = raw(keyed.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n")
        assert status_of(out) == 401, (value, out)
        assert body_of(out)["error"]["code"] == "invalid_api_key"
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        # the key as the client sends it (UTF-8) is accepted ...
        assert http.get("/models", headers=auth()).status_code == 200
        # ... and its latin-1 reading (what the server used to compare with) is not the key
        assert (
            http.get("/models", headers={"Authorization": b"Bearer " + KEY.encode("latin-1", "replace")}).status_code
            == 401
        )


def test_health_behind_a_key_says_only_ok_without_it(keyed, open_server):
    with httpx.Client(timeout=10) as http:
        base = keyed.url.removesuffix("/v1")
        assert http.get(base + "/health").json() == {"status": "ok"}
        assert http.get(base + "/health", headers=auth("wrong")).json() == {"status": "ok"}
        full = http.get(base + "/health", headers=auth()).json()
        assert full["profile"] == "demo" and "generating" in full
        assert "profile" in http.get(open_server.url.removesuffix("/v1") + "/health").json()  # no key: all of it


@pytest.mark.slow  # a second or more of real time: CI runs it, the fast loop does not
def test_a_client_sending_less_than_its_content_length_is_let_go(open_server):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    out, took = raw(open_server.port, head + b'Content-Length: 1000\r\n\r\n{"model": ')
    assert status_of(out) == 408 and took < SMALL.read_timeout_s + 2, (out, took)
    # headers that never end: the connection is closed
    out, took = raw(open_server.port, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert out == b"" and took < SMALL.read_timeout_s + 2


@pytest.mark.slow
def test_slow_clients_cannot_starve_others(open_server):
    """More idle connections than the limit: the extra ones get a 503 at once, and every idle one is
    closed within the read timeout, after which a normal request is answered."""
    socks = []
    try:
        for _ in range(SMALL.max_connections + 4):
            s = socket.create_connection(("127.0.0.1", open_server.port), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(s)
        time.sleep(0.2)
        with httpx.Client(timeout=10) as http:
            assert http.get(open_server.url.removesuffix("/v1") + "/health").status_code == 503
        time.sleep(SMALL.read_timeout_s + 1.5)
        for s in socks:
            s.settimeout(5)
            assert s.recv(10) == b""  # closed by the server
        with httpx.Client(timeout=10) as http:
            assert http.get(open_server.url.removesuffix("/v1") + "/health").status_code == 200
    finally:
        for s in socks:
            s.close()


def test_a_prompt_past_the_context_is_refused_before_generating(open_server):
    state = open_server.state
    before = dict(state.scheduler.counts)
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        t = time.monotonic()
        huge = http.post(
            "/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "word " * 120_000}]}
        )
        assert time.monotonic() - t < 5
        assert huge.status_code == 400 and huge.json()["error"]["code"] == "context_length_exceeded"
        assert "2048 tokens" in huge.json()["error"]["message"] and huge.json()["error"]["param"] == "messages"
        # one that passes the cheap bound but not the tokenizer: refused by the worker, before generating
        near = http.post(
            "/chat/completions", json={"model": "demo", "messages": [{"role": "user", "content": "sea " * 3000}]}
        )
        assert near.status_code == 400 and "2048 tokens" in near.json()["error"]["message"]
        assert "the conversation is" in near.json()["error"]["message"]
        many = [{"role": "user" if i % 2 == 0 else "assistant", "content": "hi"} for i in range(10_001)]
        t = time.monotonic()
        r = http.post("/chat/completions", json={"model": "demo", "messages": many})
        assert time.monotonic() - t < 5
        assert r.status_code == 400 and "10001 messages" in r.json()["error"]["message"]
    assert state.scheduler.counts["finished"] - before["finished"] <= 1  # the near one took its turn, no reply
    assert not state.scheduler.busy


@pytest.mark.slow
def test_max_tokens_is_capped_at_the_context(open_server):
    with httpx.Client(base_url=open_server.url, timeout=120) as http:
        r = http.post(
            "/chat/completions",
            json={
                "model": "demo",
                "messages": [{"role": "user", "content": "sea " * 2000}],
                "max_tokens": 1_000_000,
                "temperature": 0,
            },
        )
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["prompt_tokens"] > 2000 and usage["total_tokens"] <= 2048


@pytest.mark.slow  # a second or more of real time: CI runs it, the fast loop does not
@pytest.mark.parametrize("stream", [False, True])
def test_a_departed_client_stops_its_reply_whatever_max_tokens(open_server, stream):
    state = open_server.state
    before = state.scheduler.counts["cancelled"]
    body = {
        "model": "demo",
        "messages": [{"role": "user", "content": "Write a long story"}],
        "max_tokens": 1_000_000,
        "temperature": 1,
        "seed": 3,
        "stream": stream,
    }
    if stream:
        with httpx.Client(base_url=open_server.url, timeout=30) as http:
            with http.stream("POST", "/chat/completions", json=body) as r:
                assert r.status_code == 200
                next(line for line in r.iter_lines() if line.startswith("data: "))
            # leaving the block closed the connection mid-reply
    else:
        with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=open_server.url, timeout=0.5) as http:
            http.post("/chat/completions", json=body)
    wait_for(lambda: state.scheduler.counts["cancelled"] > before and not state.scheduler.busy, timeout=10)
    with httpx.Client(timeout=10) as http:
        health = http.get(open_server.url.removesuffix("/v1") + "/health").json()
    assert health["generating"] is False and health["waiting"] == 0


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "demo", "messages": [{"role": "user", "content": "hi \ud800 there"}]}, "messages[0].content"),
        (
            {"model": "demo", "messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
            "messages[0].content[0].text",
        ),
        ({"model": "demo", "messages": QUESTION, "stop": ["\ud83d"]}, "stop[0]"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(open_server, body, param):
    data = json.dumps(body).encode("ascii")  # "\ud800" as JSON's escape, the way a client sends it
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        r = http.post("/chat/completions", content=data, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == param and "lone surrogate" in err["message"]
        fb = http.post(
            "/feedback",
            content=b'{"reply_id": "x", "rating": 1, "comment": "\\udc00"}',
            headers={"content-type": "application/json"},
        )
        assert fb.status_code == 400 and fb.json()["error"]["param"] == "comment"


def test_deep_or_broken_json_is_a_400(open_server):
    with httpx.Client(base_url=open_server.url, timeout=30) as http:
        r = http.post("/chat/completions", content=b"[" * 100_000 + b"]" * 100_000)
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
        r = http.post("/chat/completions", content=b"\xff\xfe{}")
        assert r.status_code == 400


DAMAGED = {
    "truncated": "20260102-000000-sft",
    "config": "20260103-000000-sft",
    "shapes": "20260104-000000-sft",
    "link": "20260105-000000-sft",
}


@pytest.fixture(scope="module")
def damaged_runs(serve_home):
    """Three finished adapters, each damaged its own way."""
    from tests.serve.conftest import make_lora

    for how, run in DAMAGED.items():
        out = make_lora(serve_home, "demo", run, seed=1)
        weights, config = out / "adapter_model.safetensors", out / "adapter_config.json"
        if how == "truncated":
            data = weights.read_bytes()
            weights.write_bytes(data[: len(data) // 2])
        elif how == "config":
            cfg = json.loads(config.read_text())
            config.write_text(json.dumps({**cfg, "r": "x"}))
        elif how == "shapes":  # intact files, but weights of another rank than the config says
            cfg = json.loads(config.read_text())
            config.write_text(json.dumps({**cfg, "r": 8}))
        else:  # the weights a link to a file outside the home
            outside = serve_home.root.parent / "foreign.safetensors"
            weights.rename(outside)
            weights.symlink_to(outside)
    return DAMAGED


@pytest.mark.slow  # a second or more of real time: CI runs it, the fast loop does not
def test_a_damaged_adapter_is_refused_with_a_sentence(open_server, damaged_runs, serve_home):
    from engine import adapters as pointer

    with httpx.Client(base_url=open_server.url, timeout=60) as http:
        listed = [m["id"] for m in http.get("/models").json()["data"]]
        for how in ("truncated", "config", "link"):
            assert damaged_runs[how] not in listed, how
        for how, run in damaged_runs.items():
            r = http.post("/chat/completions", json={"model": run, "messages": QUESTION, "max_tokens": 2})
            assert r.status_code == 400, (how, r.text)
            err = r.json()["error"]
            assert err["code"] == "adapter_unavailable" and err["param"] == "model" and run in err["message"], err
            assert "\n" not in err["message"] and "Traceback" not in err["message"]
        pointer.set_promoted(serve_home, "demo", damaged_runs["truncated"])
        try:
            r = http.post("/chat/completions", json={"model": "promoted", "messages": QUESTION, "max_tokens": 2})
            assert r.status_code == 400 and "damaged" in r.json()["error"]["message"]
            assert http.get("/models").status_code == 200
        finally:
            pointer.set_promoted(serve_home, "demo", None)
        promoted = pointer.promoted_file(serve_home, "demo")
        saved = promoted.read_bytes()
        promoted.write_text('{"run_id": 5, "history": "x"}')  # a damaged pointer
        try:
            assert http.get("/models").status_code == 200
            r = http.post("/chat/completions", json={"model": "promoted", "messages": QUESTION, "max_tokens": 2})
            assert r.status_code == 400 and "promoted.json" in r.json()["error"]["message"], r.text
        finally:
            promoted.write_bytes(saved)
        # the server goes on serving the rest
        ok = http.post("/chat/completions", json={"model": "base", "messages": QUESTION, "max_tokens": 2})
        assert ok.status_code == 200, ok.text
    assert not open_server.state.scheduler.busy


@pytest.mark.slow
def test_ctrl_c_while_a_reply_is_generated_stops_cleanly(demo_home):
    """The real command: SIGINT during a long reply exits 130 within seconds, the partial reply logged as
    stopped, and no traceback or C++ abort on stderr."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading

    env = dict(
        os.environ,
        TUNELOOP_HOME=str(demo_home.root),
        PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--profile", "demo", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = None
        for line in proc.stderr:
            found = re.search(r"serving demo at (http://\S+/v1)", line)
            if found:
                url = found.group(1)
                break
        assert url
        answers: list = []

        def ask(stream: bool):
            body = {
                "model": "demo",
                "messages": [{"role": "user", "content": "Write a long story"}],
                "max_tokens": 100_000,
                "temperature": 1,
                "seed": 5,
                "stream": stream,
            }
            try:
                answers.append(httpx.post(url + "/chat/completions", json=body, timeout=60).status_code)
            except httpx.HTTPError as exc:
                answers.append(type(exc).__name__)

        threads = [threading.Thread(target=ask, args=(s,)) for s in (False, False, True)]  # one runs, two wait
        for t in threads:
            t.start()
        health = url.removesuffix("/v1") + "/health"
        wait_for(lambda: httpx.get(health).json().get("generating"), timeout=30)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        took = time.monotonic() - t0
        err = proc.stderr.read()
        for t in threads:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 130 and took < 8, (rc, took, err)
    for bad in ("Traceback", "terminate called", "Exception in ASGI", "Cancel "):
        assert bad not in err, err
    from engine.feedback import FeedbackLog

    replies = [m for m in FeedbackLog(demo_home, "demo").replay().messages.values() if m.role == "assistant"]
    assert replies and all(m.generation.get("stopped") for m in replies)


def test_serving_a_damaged_adapter_is_refused_at_start(damaged_runs, serve_home):
    from tests.engine_cli import run_engine

    for how in ("truncated", "config", "link", "shapes"):
        code, out = run_engine(
            "serve", "--profile", "demo", "--home", str(serve_home.root), "--port", "0", "--adapter", damaged_runs[how]
        )
        assert code == 2 and "Traceback" not in out, (how, out)
        lines = out.splitlines()  # at most "loading ..." then the one sentence
        assert len(lines) <= 2 and lines[-1].startswith("error: ") and damaged_runs[how] in lines[-1], out


def test_stop_replies_says_when_a_reply_cannot_be_stopped(serve_home, demo_lm):
    """What ctrl+c relies on: every job cancelled, worker threads joined; False (the command then exits at
    once instead of letting Python abort around a thread inside torch) when one does not end in time."""
    import threading

    from engine.serve.server import build_state

    state = build_state(demo_lm.profile, serve_home, demo_lm)
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, daemon=True)
    state.workers.add(stuck)
    stuck.start()
    t = time.monotonic()
    assert state.stop_replies(timeout=0.3) is False and time.monotonic() - t < 2
    release.set()
    stuck.join(5)
    assert state.stop_replies(timeout=0.3) is True


def test_too_few_connections_for_the_queue_is_one_sentence(demo_home):
    from tests.engine_cli import run_engine

    code, out = run_engine("serve", "--profile", "demo", "--port", "0", "--max-waiting", "16", "--max-connections", "8")
    assert code == 2 and out.strip() == (
        "error: --max-connections 8 leaves no room for --max-waiting 16 requests and the one being answered; "
        "give at least 18."
    )
