"""``engine serve`` answered by the real ``openai`` client over loopback, on the demo model."""

from __future__ import annotations

import json

import pytest

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def log_events(server) -> list[dict]:
    path = server.state.recorder.log.path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_models_lists_base_adapters_and_aliases(client):
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "builtin:demo"
    assert "promoted" in ids and "demo" in ids


def test_non_streamed_reply_is_logged_with_its_id(client, server, demo_lm):
    from engine.runtime import GenerationParams

    resp = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=12, temperature=0)
    text = resp.choices[0].message.content
    expected, _ = demo_lm.generate(
        QUESTION, GenerationParams.from_profile(demo_lm.profile, max_new_tokens=12, do_sample=False)
    )
    assert text == expected  # the same greedy reply as the runtime in-process
    reply_id = resp.model_extra["reply_id"]
    assert resp.id == f"chatcmpl-{reply_id}"
    assert resp.usage.completion_tokens <= 12 and resp.choices[0].finish_reason in ("stop", "length")
    events = {e["id"]: e for e in log_events(server)}
    reply = events[reply_id]
    assert reply["role"] == "assistant" and reply["content"] == text and reply["source"] == "serve"
    assert reply["generation"]["served_model"] == "demo" and reply["generation"]["profile"] == "demo"
    user = events[reply["parent_id"]]
    assert user["role"] == "user" and user["content"] == QUESTION[0]["content"]


def test_streamed_reply_arrives_in_chunks_and_matches(client, server):
    stream = client.chat.completions.create(
        model="builtin:demo",
        messages=QUESTION,
        max_tokens=20,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 20
    whole = client.chat.completions.create(model="builtin:demo", messages=QUESTION, max_tokens=20, temperature=0)
    assert text == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1
    reply_id = chunks[0].id.removeprefix("chatcmpl-")
    assert any(e["id"] == reply_id and e["content"] == text for e in log_events(server))


def test_max_tokens_is_honoured(client):
    resp = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=3, temperature=0)
    assert resp.usage.completion_tokens <= 3
    assert resp.choices[0].finish_reason in ("length", "stop")


@pytest.mark.slow
def test_seed_makes_sampling_repeatable_and_temperature_samples(client):
    def reply(seed):
        return (
            client.chat.completions.create(
                model="demo", messages=QUESTION, max_tokens=16, temperature=1.0, top_p=0.95, seed=seed
            )
            .choices[0]
            .message.content
        )

    assert reply(7) == reply(7)
    assert len({reply(s) for s in (1, 2, 3)}) > 1


@pytest.mark.slow
def test_stop_sequence_cuts_the_reply(client):
    full = (
        client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=30, temperature=0)
        .choices[0]
        .message.content
    )
    assert len(full) > 6
    stop = full[3:6]
    cut = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=30, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(
        model="demo", messages=QUESTION, max_tokens=30, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == full[: full.index(stop)]


@pytest.mark.slow
def test_a_follow_up_continues_the_logged_conversation(client, server):
    first = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello there"}], max_tokens=8, temperature=0
    )
    history = [
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "And then?"},
    ]
    second = client.chat.completions.create(model="demo", messages=history, max_tokens=8, temperature=0)
    events = {e["id"]: e for e in log_events(server)}
    a, b = events[first.model_extra["reply_id"]], events[second.model_extra["reply_id"]]
    assert a["conversation_id"] == b["conversation_id"] == second.model_extra["conversation_id"]
    follow_up = events[b["parent_id"]]
    assert follow_up["content"] == "And then?" and follow_up["parent_id"] == a["id"]
    other = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Unrelated"}], max_tokens=4, temperature=0
    )
    assert other.model_extra["conversation_id"] != a["conversation_id"]


def test_system_message_becomes_the_replys_system_prompt(client, server):
    resp = client.chat.completions.create(
        model="demo",
        max_tokens=4,
        temperature=0,
        messages=[{"role": "system", "content": "Answer in French."}, *QUESTION],
    )
    events = {e["id"]: e for e in log_events(server)}
    assert events[resp.model_extra["reply_id"]]["generation"]["system_prompt"] == "Answer in French."


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0].role"),
        ({"messages": QUESTION, "max_tokens": 0}, "max_tokens"),
        ({"messages": QUESTION, "temperature": 7}, "temperature"),
        ({"messages": QUESTION, "top_p": 0}, "top_p"),
        ({"messages": QUESTION, "seed": -1}, "seed"),
        ({"messages": QUESTION, "n": 2}, "n"),
        ({"messages": QUESTION, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [*QUESTION, {"role": "assistant", "content": "hi"}]}, "messages"),
    ],
)
def test_bad_requests_get_a_400_in_openais_shape(client, kwargs, param):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", **kwargs)
    assert info.value.status_code == 400
    err = info.value.body
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"].startswith(param.split("[")[0])
    assert "Traceback" not in err["message"] and err["message"].endswith(".")


def test_unknown_model_is_a_404_naming_the_models(client):
    import openai

    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert info.value.body["code"] == "model_not_found" and "builtin:demo" in info.value.body["message"]


def test_broken_json_and_wrong_types_are_400s_not_500s(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as http:
        for body in (b"{not json", b"[]", b'{"model": 3, "messages": "x"}'):
            r = http.post("/chat/completions", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400, (body, r.text)
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = http.get("/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
