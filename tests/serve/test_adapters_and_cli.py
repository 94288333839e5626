"""The request's ``model`` picks the adapter (switched without reloading the base); the command line refuses
what it must with one sentence."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from engine import adapters as pointer
from tests.engine_cli import run_engine
from tests.serve.conftest import make_lora

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
RUN = "20260101-000000-sft"


@pytest.fixture(scope="module")
def adapter_run(serve_home):
    make_lora(serve_home, "demo", RUN, seed=3)
    return RUN


def greedy(client, model, n=16):
    resp = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=n, temperature=0)
    return resp.choices[0].message.content, resp


@pytest.mark.slow
def test_model_name_selects_the_adapter_without_reloading(client, server, adapter_run, demo_lm, serve_home):
    from engine.runtime import GenerationParams

    assert adapter_run in [m.id for m in client.models.list().data]
    base_weights = demo_lm.model
    base_text, _ = greedy(client, "builtin:demo")
    tuned_text, resp = greedy(client, adapter_run)
    assert tuned_text != base_text
    assert resp.model_extra["adapter"] == adapter_run
    assert demo_lm.model is base_weights and adapter_run in demo_lm.adapters  # attached, not reloaded
    # the same reply as the runtime gives with that adapter in-process
    demo_lm.use_adapter(adapter_run)
    try:
        params = GenerationParams.from_profile(demo_lm.profile, max_new_tokens=16, do_sample=False)
        assert demo_lm.generate(QUESTION, params)[0] == tuned_text
    finally:
        demo_lm.use_adapter(None)
    assert greedy(client, "base")[0] == base_text  # and back, per request
    # "promoted" follows promoted.json at each request
    assert greedy(client, "promoted")[0] == base_text
    pointer.set_promoted(serve_home, "demo", adapter_run)
    try:
        assert greedy(client, "promoted")[0] == tuned_text
        assert greedy(client, "demo")[0] == tuned_text  # the profile's name: the server's --adapter (promoted)
    finally:
        pointer.set_promoted(serve_home, "demo", None)


def test_non_loopback_host_without_a_key_is_refused(monkeypatch, demo_home):
    monkeypatch.delenv("TUNELOOP_API_KEY", raising=False)
    code, out = run_engine("serve", "--profile", "demo", "--host", "0.0.0.0")
    assert code == 2
    assert out.strip() == (
        "error: refusing to listen on 0.0.0.0 without an API key; pass --api-key or set "
        "TUNELOOP_API_KEY (only 127.0.0.1, ::1 and localhost may go without one)."
    )


def test_a_port_in_use_is_one_sentence(demo_home):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, out = run_engine("serve", "--profile", "demo", "--port", str(port))
    assert code == 2 and out.startswith(f"error: cannot listen on 127.0.0.1:{port} (") and "Traceback" not in out


def test_an_unknown_adapter_is_refused_before_loading(demo_home):
    code, out = run_engine("serve", "--profile", "demo", "--adapter", "20990101-000000-sft", "--port", "0")
    assert code == 2 and "has no finished adapter" in out and out.count("\n") == 1


@pytest.mark.slow
def test_engine_serve_command_answers_the_openai_client(demo_home):
    """The real command in its own process, on a free port, with a key."""
    import openai

    env = dict(
        os.environ,
        TUNELOOP_API_KEY="k-123",
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
        assert url, "the server did not say where it listens"
        client = openai.OpenAI(base_url=url, api_key="k-123", max_retries=0, timeout=60)
        assert client.models.list().data[0].id == "builtin:demo"
        assert client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=4).choices
    finally:
        proc.terminate()
        proc.wait(30)
