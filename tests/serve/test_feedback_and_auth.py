"""``/v1/feedback`` writes the chat app's events (with ``source: serve``); an API key guards every endpoint."""

from __future__ import annotations

import json

import httpx
import pytest

from engine.feedback import FeedbackLog
from tests.serve.conftest import API_KEY, start_server

QUESTION = [{"role": "user", "content": "Tell me about the sea"}]


def events_of(state) -> list[dict]:
    return [json.loads(line) for line in state.recorder.log.path.read_text().splitlines() if line.strip()]


def feedback(server, body, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return http.post("/feedback", json=body, headers=headers)


def test_a_rating_on_a_reply_id_lands_in_the_log(client, server, serve_home):
    resp = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=6, temperature=0)
    r = feedback(server, {"reply_id": resp.id, "rating": -1, "tags": ["wrong"], "comment": "not about the sea"})
    assert r.status_code == 200, r.text
    rating = events_of(server.state)[-1]
    assert rating["type"] == "rating" and rating["message_id"] == resp.model_extra["reply_id"]
    assert (rating["value"], rating["tags"], rating["comment"], rating["source"]) == (
        -1,
        ["wrong"],
        "not about the sea",
        "serve",
    )
    r = feedback(server, {"reply_id": resp.model_extra["reply_id"], "edit": "The sea is large and salty."})
    assert r.status_code == 200
    # The log replays as the chat app's would: the reply is disliked and corrected.
    msg = FeedbackLog(serve_home, "demo").replay().messages[resp.model_extra["reply_id"]]
    assert msg.rating == -1 and msg.tags == ["wrong"] and msg.final_text == "The sea is large and salty."


@pytest.mark.slow
def test_a_pick_among_regenerated_replies_is_a_choice(client, server, serve_home):
    a = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=6, temperature=1, seed=1)
    b = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=6, temperature=1, seed=2)
    state = FeedbackLog(serve_home, "demo").replay()
    ra, rb = state.messages[a.model_extra["reply_id"]], state.messages[b.model_extra["reply_id"]]
    assert ra.parent_id == rb.parent_id  # the same question again: siblings, as a regenerate
    r = feedback(server, {"reply_id": b.id, "candidates": [a.id, b.id]})
    assert r.status_code == 200, r.text
    choice = events_of(server.state)[-1]
    assert choice["type"] == "choice" and choice["chosen_id"] == rb.id and set(choice["candidates"]) == {ra.id, rb.id}
    assert FeedbackLog(serve_home, "demo").replay().messages[rb.id].picked


@pytest.mark.parametrize(
    "body, status, param",
    [
        ({"reply_id": "nope", "rating": 1}, 404, "reply_id"),
        ({"reply_id": "x", "rating": 5}, 400, "rating"),
        ({"reply_id": "x"}, 400, None),
        ({"rating": 1}, 400, "reply_id"),
        ({"reply_id": "x", "rating": 1, "surprise": True}, 400, "surprise"),
    ],
)
def test_bad_feedback_is_a_4xx_in_openais_shape(server, body, status, param):
    if body.get("reply_id") == "x":  # a real reply, so only the named problem remains
        body = {**body, "reply_id": next(e["id"] for e in events_of(server.state) if e.get("role") == "assistant")}
    r = feedback(server, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if param:
        assert err["param"] == param


def test_feedback_on_a_user_message_is_refused(server, client):
    resp = client.chat.completions.create(model="demo", messages=QUESTION, max_tokens=2, temperature=0)
    user_id = next(e for e in events_of(server.state) if e["id"] == resp.model_extra["reply_id"])["parent_id"]
    r = feedback(server, {"reply_id": user_id, "rating": 1})
    assert r.status_code == 400 and "user message" in r.json()["error"]["message"]


def test_feedback_on_a_reply_the_chat_app_wrote_after_start(server, serve_home):
    log = FeedbackLog(serve_home, "demo")
    user = log.add_message("conv-tui", None, "user", "hi")
    reply = log.add_message("conv-tui", user["id"], "assistant", "hello", generation={"system_prompt": ""})
    assert feedback(server, {"reply_id": reply["id"], "rating": 1}).status_code == 200


@pytest.mark.slow
def test_with_an_api_key_a_missing_or_wrong_key_is_a_401(serve_home, demo_lm):
    import openai

    srv, _ = start_server(serve_home, demo_lm, api_key=API_KEY)
    with srv:
        for key in ("wrong-key", API_KEY + "x"):
            bad = openai.OpenAI(base_url=srv.url, api_key=key, max_retries=0)
            with pytest.raises(openai.AuthenticationError) as info:
                bad.models.list()
            assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            for path in ("/models",):
                assert http.get(path).status_code == 401
            assert http.post("/chat/completions", json={"model": "demo", "messages": QUESTION}).status_code == 401
            assert http.post("/feedback", json={"reply_id": "a", "rating": 1}).status_code == 401
        good = openai.OpenAI(base_url=srv.url, api_key=API_KEY, max_retries=0)
        assert good.chat.completions.create(model="demo", messages=QUESTION, max_tokens=2).choices
