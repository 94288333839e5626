"""A model on an OpenAI-compatible server (``[model] backend = "openai"``): the same surface as
LoadedModel (``stream``/``generate``, ``load_adapter``/``use_adapter``, ``adapter``), so the chat app
and ``engine generate`` chat through ``engine serve``, vLLM, llama.cpp or Ollama exactly as with the
in-process model, and each reply's generation record names the server and the model it asked for.

Adapters are asked for by name: the run id (``engine serve`` lists every finished adapter under its
run id; on vLLM, load it with ``--lora-modules RUN=DIR`` or its LoRA API under the same name). No torch.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator

from engine.errors import UserError
from engine.runtime.params import GenerationParams, reply_record

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a queued request on a busy server may wait long for its first token


def api_key(profile) -> str | None:
    """The server's API key from the variable ``model.api_key_env`` names (None: the profile names none);
    a named variable that is not set is one sentence."""
    name = profile.model.api_key_env
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise UserError(f"profile {profile.name!r} takes the server's API key from ${name}, which is not set; "
                        "export it and start again.")
    return key


def load(profile, home, progress, run_id: str | None, adapter_dir):
    """The ``openai`` backend (engine.runtime.backend): nothing to load here, the weights live on a server."""
    remote = RemoteModel(profile, home)
    if run_id is not None:
        remote.load_adapter(run_id, adapter_dir)
        remote.use_adapter(run_id)
    progress("ready", 1.0)
    return remote


class RemoteModel:
    """The ``openai`` backend's ChatModel (engine.runtime.backend)."""

    backend = "openai"
    note: str | None = None
    device = "remote"
    dtype = "remote"
    path = None

    def __init__(self, profile, home) -> None:
        m = profile.model
        if not m.base_url:
            raise UserError(
                f'profile {profile.name!r} has backend = "openai" but no model.base_url; set it to the '
                "server's API root, e.g. http://127.0.0.1:8000/v1."
            )
        self.profile = profile
        self.home = home
        self.model_id = m.id
        self.base_url = m.base_url.rstrip("/")
        self.remote_model = m.remote_model or m.id
        self.revision = f"remote:{self.remote_model}"
        self.api_key = api_key(profile)
        self._adapter: str | None = None
        self._adapters: dict[str, object] = {}

    # -- adapters: names on the server ------------------------------------------------------------
    @property
    def adapter(self) -> str | None:
        return self._adapter

    @property
    def adapters(self) -> dict:
        return dict(self._adapters)

    def load_adapter(self, run_id: str, path=None) -> None:
        if self.profile.model.server_loads_adapters and path is not None:
            load_adapter_on_server(self.profile, run_id, path)
        self._adapters[run_id] = path

    def unload_adapter(self, run_id: str) -> None:
        self._adapters.pop(run_id, None)
        if self._adapter == run_id:
            self._adapter = None

    def use_adapter(self, run_id: str | None) -> None:
        if run_id is not None and run_id not in self._adapters:
            raise UserError(f"adapter {run_id!r} is not loaded; load it first.")
        self._adapter = run_id

    # -- replies ----------------------------------------------------------------------------------
    def prompt_messages(self, messages: list[dict], system_prompt: str | None = None) -> list[dict]:
        from engine.runtime.backend import chat_messages

        return chat_messages(self.profile, messages, system_prompt)

    def stream(
        self, messages: list[dict], params: GenerationParams | None = None, system_prompt: str | None = None
    ) -> RemoteGeneration:
        params = params or GenerationParams.from_profile(self.profile)
        seed = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
        system = self.profile.system_prompt if system_prompt is None else system_prompt
        name = self._adapter or self.remote_model
        body = {
            "model": name,
            "messages": self.prompt_messages(messages, system),
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": params.max_new_tokens,
            "seed": seed,
            "temperature": 0 if params.greedy else params.temperature,
        }
        if not params.greedy:
            body["top_p"] = params.top_p
        record = reply_record(self, params, seed, system, 0, server=self.base_url, server_model=name)
        return RemoteGeneration(self, body, record)

    def generate(
        self, messages: list[dict], params: GenerationParams | None = None, system_prompt: str | None = None
    ) -> tuple[str, dict]:
        gen = self.stream(messages, params, system_prompt)
        return gen.wait(), gen.record


class RemoteGeneration:
    """One streamed reply from the server. Iterate for pieces; ``cancel()`` closes the connection at the
    next piece (the server then stops generating); ``record`` is complete when iteration ends."""

    def __init__(self, model: RemoteModel, body: dict, record: dict) -> None:
        self.model = model
        self.body = body
        self.record = record
        self.text = ""
        self.stopped = False
        self._cancelled = False
        self._consumed = False

    def cancel(self) -> None:
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def wait(self) -> str:
        for _ in self:
            pass
        return self.text

    def __iter__(self) -> Iterator[str]:
        if self._consumed:
            raise RuntimeError("a RemoteGeneration can be iterated only once")
        self._consumed = True
        return self._pieces()

    def _pieces(self) -> Iterator[str]:
        import httpx

        m = self.model
        headers = {"Authorization": f"Bearer {m.api_key}"} if m.api_key else {}
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        start = time.perf_counter()
        finish, usage, first = None, None, None
        try:
            with (
                httpx.Client(timeout=timeout) as http,
                http.stream("POST", f"{m.base_url}/chat/completions", json=self.body, headers=headers) as resp,
            ):
                if resp.status_code >= 400:
                    resp.read()
                    raise UserError(
                        f"the server at {m.base_url} refused the request ({resp.status_code}: {_error_message(resp)})."
                    )
                for line in resp.iter_lines():
                    if self._cancelled:
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise UserError(
                            f"the server at {m.base_url} failed mid-reply: "
                            f"{chunk['error'].get('message', 'unknown error')}"
                        )
                    usage = chunk.get("usage") or usage
                    self.record.setdefault("server_reply_id", chunk.get("reply_id") or chunk.get("id"))
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        finish = choice.get("finish_reason") or finish
                        if piece:
                            first = first or time.perf_counter()
                            self.text += piece
                            yield piece
        except httpx.HTTPError as exc:
            raise UserError(
                f"cannot reach the model server at {m.base_url} ({type(exc).__name__}: {exc}); is it running?"
            ) from None
        finally:
            elapsed = time.perf_counter() - start
            self.stopped = self._cancelled and finish is None
            completion = int((usage or {}).get("completion_tokens") or 0)
            self.record.update(
                prompt_tokens=int((usage or {}).get("prompt_tokens") or 0),
                completion_tokens=completion,
                ttft_s=round(first - start, 6) if first else None,
                elapsed_s=round(elapsed, 6),
                tokens_per_s=round(completion / elapsed, 3) if completion and elapsed > 0 else 0.0,
                stopped=self.stopped,
                finish_reason="cancelled" if self.stopped else (finish or "stop"),
            )


def _error_message(resp) -> str:
    try:
        return str(resp.json()["error"]["message"]).rstrip(".")
    except (ValueError, KeyError, TypeError):
        return resp.text[:200].strip() or resp.reason_phrase


def load_adapter_on_server(profile, run_id: str, path) -> None:
    """Load the adapter folder ``path`` into the profile's vLLM server under the name ``run_id`` (its runtime
    LoRA API: ``POST {base_url}/load_lora_adapter``); one that is already loaded counts as loaded. A server
    that refuses or cannot be reached is one sentence (UserError)."""
    import httpx

    m = profile.model
    key = api_key(profile)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = f"{(m.base_url or '').rstrip('/')}/load_lora_adapter"
    try:
        resp = httpx.post(url, json={"lora_name": run_id, "lora_path": str(path)}, headers=headers,
                          timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the model server at {m.base_url} to load adapter {run_id} "
                        f"({type(exc).__name__}); is it running?") from None
    if resp.status_code == 200:
        return
    message = _error_message(resp)
    if resp.status_code == 400 and "already" in message.lower():
        return
    raise UserError(f"the model server at {m.base_url} did not load adapter {run_id} (HTTP {resp.status_code}: "
                    f"{message}); start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True.")
