"""``model.server_loads_adapters``: tuneloop loads adapters into a vLLM server through its runtime LoRA API
(``POST /v1/load_lora_adapter``), when the app or ``engine generate`` uses one and when ``engine finetune``
promotes one. vLLM itself needs a GPU; a stand-in here speaks the same two endpoints the way vLLM
answers them (200 on success, 400 "already been loaded" for a name it has)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from engine.errors import UserError
from engine.feedback import FeedbackLog
from engine.profiles import load_profile
from tests.conftest import add_user_profile
from tests.engine_cli import run_engine


def _stand_in():
    app = FastAPI()
    app.state.loaded = {}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request):
        body = await request.json()
        if request.headers.get("authorization") != "Bearer k3y":
            return JSONResponse({"error": {"message": "Unauthorized"}}, status_code=401)
        if body["lora_name"] in app.state.loaded:
            return JSONResponse({"error": {"message": f"The lora adapter '{body['lora_name']}' has already been "
                                                      "loaded.", "type": "InvalidUserInput", "code": 400}},
                                status_code=400)
        app.state.loaded[body["lora_name"]] = body["lora_path"]
        return PlainTextResponse(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload(request: Request):
        body = await request.json()
        app.state.loaded.pop(body["lora_name"], None)
        return PlainTextResponse("ok")

    return app


@pytest.fixture
def vllm():
    from engine.serve.server import BackgroundServer

    app = _stand_in()
    with BackgroundServer(app) as srv:
        srv.loaded = app.state.loaded
        yield srv


def _profile(home, url: str) -> None:
    add_user_profile(home, "gpu", f'[model]\nid = "builtin:demo"\ndevice = "cpu"\nbackend = "openai"\n'
                                  f'base_url = "{url}"\napi_key_env = "VLLM_KEY"\nserver_loads_adapters = true\n'
                                  '[train]\nmin_rows = 1\n')


def test_using_an_adapter_loads_it_into_the_server_once(vllm, home, monkeypatch, tmp_path):
    from engine.runtime.remote import RemoteModel

    monkeypatch.setenv("VLLM_KEY", "k3y")
    _profile(home, vllm.url)
    lm = RemoteModel(load_profile("gpu", home), home)
    lm.load_adapter("20260101-000000-sft", tmp_path / "adapter")
    lm.load_adapter("20260101-000000-sft", tmp_path / "adapter")  # vLLM says "already loaded": fine
    lm.use_adapter("20260101-000000-sft")
    assert vllm.loaded == {"20260101-000000-sft": str(tmp_path / "adapter")}


def test_a_server_without_the_lora_api_is_one_sentence(vllm, home, monkeypatch, tmp_path):
    from engine.runtime.remote import RemoteModel

    monkeypatch.setenv("VLLM_KEY", "wrong")
    _profile(home, vllm.url)
    with pytest.raises(UserError, match=r"did not load adapter .* \(HTTP 401: Unauthorized\); start vLLM with "
                                        r"--enable-lora"):
        RemoteModel(load_profile("gpu", home), home).load_adapter("20260101-000000-sft", tmp_path)
    assert vllm.loaded == {}


@pytest.mark.slow
def test_a_promotion_loads_the_new_adapter_into_the_server(vllm, demo_home, monkeypatch):
    monkeypatch.setenv("VLLM_KEY", "k3y")
    _profile(demo_home, vllm.url)
    log = FeedbackLog(demo_home, "gpu")
    for i in range(3):
        user = log.add_message(f"c{i}", None, "user", f"Question {i}?")
        reply = log.add_message(f"c{i}", user["id"], "assistant", f"Answer {i}.")
        log.rate(reply["id"], 1)
    code, out = run_engine("finetune", "--profile", "gpu", "--method", "sft", "--max-steps", "2",
                           "--home", str(demo_home.root))
    assert code == 0, out
    run_id = next(iter(vllm.loaded))
    assert vllm.loaded == {run_id: str(demo_home.run_dir("gpu", run_id) / "adapter")}
    assert f"model server: loaded into the model server at {vllm.url} as {run_id}" in out
