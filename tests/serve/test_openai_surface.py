"""What the OpenAI API promises and ``engine serve`` supports or refuses: the model list and retrieve,
tools and other unsupported parameters (400 naming them), logprobs and the penalties."""

from __future__ import annotations

import json
import math

import httpx
import openai
import pytest

QUESTION = [{"role": "user", "content": "Tell me about the sea"}]


def post(server, body):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        return http.post("/chat/completions", json={"model": "demo", "messages": QUESTION, **body})


def test_models_list_base_and_retrieve_returns_the_object(client):
    ids = [m.id for m in client.models.list().data]
    assert "base" in ids and "builtin:demo" in ids and "promoted" in ids and "demo" in ids
    base = client.models.retrieve("base")
    assert (base.id, base.object, base.owned_by) == ("base", "model", "tuneloop")
    assert client.models.retrieve("builtin:demo").id == "builtin:demo"
    assert client.models.retrieve("demo").id == "demo"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    err = info.value.body
    assert err["code"] == "model_not_found" and err["param"] == "model" and "no-such-model" in err["message"]
    assert set(info.value.response.json()["error"]) == {"message", "type", "param", "code"}


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"tools": [TOOL]}, "tools", "tools are not supported by this server"),
        ({"tool_choice": "auto"}, "tools", "tools are not supported by this server"),
        ({"functions": [TOOL["function"]]}, "functions", "tools are not supported by this server"),
        ({"response_format": {"type": "json_object"}}, "response_format", "'json_object' is not supported"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format", "json_schema"),
        ({"n": 2}, "n", "n = 2 is not supported"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio", "'audio' is not supported"),
        ({"reasoning_effort": "high"}, "reasoning_effort", "not supported"),
        ({"top_logprobs": 3}, "top_logprobs", "needs logprobs"),
        ({"logit_bias": {"99999": 5}}, "logit_bias", "vocabulary has"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages[0].content[0].type",
            "text only",
        ),
        ({"messages": [{"role": "tool", "content": "4", "tool_call_id": "a"}]}, "messages[0].role", "tools"),
    ],
)
def test_what_is_not_supported_is_a_400_naming_the_parameter(server, body, param, words):
    r = post(server, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"], err


def test_the_official_client_gets_a_400_for_tools(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages=QUESTION, tools=[TOOL], max_tokens=2)
    assert info.value.body["message"] == "tools are not supported by this server."
    assert info.value.body["param"] == "tools"


def test_harmless_and_empty_parameters_are_accepted(server):
    r = post(
        server,
        {
            "max_tokens": 2,
            "temperature": 0,
            "user": "u1",
            "metadata": {"a": "b"},
            "tools": [],
            "tool_choice": "none",
            "n": 1,
            "response_format": {"type": "text"},
            "logprobs": False,
            "parallel_tool_calls": None,
        },
    )
    assert r.status_code == 200, r.text
    # an assistant message as the SDK returns it (tool_calls: null, ...) may be sent back
    back = {"role": "assistant", "content": "hi", "refusal": None, "tool_calls": None, "function_call": None}
    r = post(server, {"max_tokens": 2, "messages": [*QUESTION, back, {"role": "user", "content": "more"}]})
    assert r.status_code == 200, r.text


def test_logprobs_and_top_logprobs(client):
    resp = client.chat.completions.create(
        model="demo", messages=QUESTION, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    content = resp.choices[0].logprobs.content
    assert content and len(content) <= resp.usage.completion_tokens
    assert "".join(t.token for t in content) == resp.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and bytes(t.bytes).decode("utf-8", "replace") == t.token
        assert len(t.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob, abs=1e-5)
        assert sum(math.exp(x.logprob) for x in t.top_logprobs) <= 1 + 1e-4
    plain = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=5, temperature=0)
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == resp.choices[0].message.content


def test_streamed_logprobs_cover_the_reply(server):
    body = {"max_tokens": 8, "temperature": 0, "logprobs": True, "stream": True}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/chat/completions", json={"model": "demo", "messages": QUESTION, **body}) as r:
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    tokens = [t for c in chunks if c["choices"] for t in (c["choices"][0]["logprobs"] or {}).get("content", [])]
    assert text and "".join(t["token"] for t in tokens) == text
    assert all(t["top_logprobs"] == [] for t in tokens)


@pytest.mark.slow
def test_frequency_and_presence_penalties_change_the_reply(client):
    def reply(**kw):
        r = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=40, temperature=0, **kw)
        return r.choices[0].message.content

    plain = reply()
    assert reply(frequency_penalty=0.0, presence_penalty=0.0) == plain
    assert reply(frequency_penalty=2.0) != plain
    assert reply(presence_penalty=2.0) != plain


def test_logit_bias_bans_a_token(client, demo_lm):
    resp = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=2, temperature=0, logprobs=True)
    first = resp.choices[0].logprobs.content[0].token
    token_id = demo_lm.tokenizer.convert_tokens_to_ids(demo_lm.tokenizer.tokenize(first)[0])
    banned = client.chat.completions.create(
        model="demo", messages=QUESTION, max_tokens=2, temperature=0, logprobs=True, logit_bias={str(token_id): -100}
    )
    assert banned.choices[0].logprobs.content[0].token != first


def test_penalties_follow_openais_formula():
    import torch

    from engine.runtime.token_controls import penalties

    proc = penalties(0.5, 1.0, {3: -100.0})
    prompt = torch.tensor([[1, 1, 1]])
    scores = torch.zeros(1, 5)
    assert proc(prompt, scores).tolist() == [[0, 0, 0, -100, 0]]  # the prompt's tokens are not counted
    reply = torch.tensor([[1, 1, 1, 2, 2, 4]])
    # token 2 twice: -(2 * 0.5) - 1; token 4 once: -(0.5) - 1
    assert proc(reply, torch.zeros(1, 5)).tolist() == [[0, 0, -2.0, -100.0, -1.5]]
