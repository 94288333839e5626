"""Request bodies of the endpoints (pydantic), and the checks that run on the parsed JSON before them.

What a chat-completions request may carry:
- supported: ``model``, ``messages`` (text only), ``max_tokens``/``max_completion_tokens``,
  ``temperature``, ``top_p``, ``stop``, ``seed``, ``stream``/``stream_options``, ``logprobs``/``top_logprobs``,
  ``frequency_penalty``/``presence_penalty``, ``logit_bias``, ``n`` = 1, ``response_format`` ``{"type": "text"}``,
  and two common extensions the runtime has anyway: ``top_k`` and ``repetition_penalty``;
- accepted and ignored (they never change the reply): ``IGNORED`` below (``user``, ``metadata``, ...);
- refused with a 400 naming the parameter: tools and function calling, JSON modes, audio and image
  input, ``n`` > 1, and any other field (a client that sends it expects something this server does not do).
"""

from __future__ import annotations

from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.serve.openai_errors import APIError
from engine.settings import SamplingSettings

MAX_STOPS = 4  # as OpenAI
MAX_TOP_LOGPROBS = 20  # as OpenAI

SETTING_OF = {
    "max_tokens": "max_new_tokens",  # the server also caps it at the model's context
    "max_completion_tokens": "max_new_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
    "seed": "seed",
}
"""Request fields that set a [generation] setting: their ranges are that setting's (engine.settings, the one
owner of the ranges), except where API_RANGES narrows them."""
API_RANGES: dict[str, dict[str, float]] = {
    "temperature": {"le": 2},
    "top_k": {"le": 1_000_000},
}
"""Where a request accepts less than a profile may set, and why (tests/serve/test_schema_bounds.py checks that
these are the only differences, and that each narrows): ``temperature`` keeps OpenAI's documented range, 0 to 2
(its API reference; above 2 it answers 400, and clients rely on that), although a profile may set up to 100;
``top_k`` (an extension, unbounded in a profile) is capped so that a request, which is untrusted input, cannot
pass an arbitrarily large integer to the sampler."""


def _bounds(field: str) -> dict[str, Any]:
    """``ge``/``gt``/``le``/``lt`` of request field ``field``: its setting's (SETTING_OF), narrowed by API_RANGES."""
    out: dict[str, Any] = {}
    settings: Any = SamplingSettings  # a pydantic dataclass: its FieldInfo (with the bounds) is __pydantic_fields__
    for m in settings.__pydantic_fields__[SETTING_OF[field]].metadata:
        if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le)):
            out.update({k: getattr(m, k) for k in ("gt", "ge", "lt", "le") if hasattr(m, k)})
    out.update(API_RANGES.get(field, {}))
    return out

IGNORED = frozenset(
    {
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "parallel_tool_calls",  # only means something with tools, which are refused
    }
)
TOOLS = frozenset({"tools", "tool_choice", "functions", "function_call"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "refusal"})


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, **_bounds("max_tokens"))
    max_completion_tokens: int | None = Field(None, **_bounds("max_completion_tokens"))
    temperature: float | None = Field(None, allow_inf_nan=False, **_bounds("temperature"))
    top_p: float | None = Field(None, allow_inf_nan=False, **_bounds("top_p"))
    top_k: int | None = Field(None, **_bounds("top_k"))
    repetition_penalty: float | None = Field(None, allow_inf_nan=False, **_bounds("repetition_penalty"))
    frequency_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, **_bounds("seed"))
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    modalities: list[str] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are allowed")
        if any(s == "" for s in stops):
            raise ValueError("a stop sequence may not be empty")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value):
        for key, bias in (value or {}).items():
            if not key.isdigit():
                raise ValueError(f"keys are token ids (integers as strings), not {key[:40]!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"a bias must be between -100 and 100 (token {key}: {bias})")
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def refuse_unsupported(self) -> None:
        """What parses but is not supported: a 400 naming the parameter."""
        if self.n is not None and self.n > 1:
            raise APIError(
                400,
                f"n = {self.n} is not supported: this server makes one reply per request; send the request "
                "again for another (each reply gets its own reply_id).",
                param="n",
                code="unsupported_parameter",
            )
        if self.response_format is not None and self.response_format.type != "text":
            raise APIError(
                400,
                f"response_format {self.response_format.type!r} is not supported by this server (only 'text'); "
                "ask for JSON in the prompt instead.",
                param="response_format",
                code="unsupported_parameter",
            )
        if self.modalities is not None and set(self.modalities) - {"text"}:
            raise APIError(
                400,
                "only the 'text' modality is supported by this server.",
                param="modalities",
                code="unsupported_parameter",
            )
        if self.top_logprobs and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs set to true.", param="top_logprobs")


def check_chat_body(data: object) -> None:
    """Refusals on the raw JSON, before pydantic: unknown and unsupported fields, tool messages, non-text
    content parts (each a 400 naming the parameter)."""
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object.", code="invalid_type")
    known = set(ChatCompletionRequest.model_fields)
    for key, value in data.items():
        if _empty(value) or (key == "tool_choice" and value == "none"):
            continue  # a null or empty parameter asks for nothing (clients send "tools": [] and the like)
        if key in TOOLS:
            raise APIError(
                400,
                "tools are not supported by this server.",
                param=key if key != "tool_choice" else "tools",
                code="unsupported_parameter",
            )
        if key not in known and key not in IGNORED:
            raise APIError(
                400, f"'{key[:100]}' is not supported by this server.", param=key[:100], code="unsupported_parameter"
            )
    messages = data.get("messages")
    if not isinstance(messages, list):
        return  # pydantic names the problem
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        where = f"messages[{i}]"
        role = m.get("role")
        if role in ("tool", "function"):
            raise APIError(
                400,
                f"{where} is a {role} message: tools are not supported by this server.",
                param=f"{where}.role",
                code="unsupported_parameter",
            )
        for key, value in m.items():
            if key not in MESSAGE_KEYS and not _empty(value):
                what = "tools are" if key in ("tool_calls", "function_call", "tool_call_id") else f"'{key[:100]}' is"
                raise APIError(
                    400,
                    f"{where}.{key[:100]}: {what} not supported by this server.",
                    param=f"{where}.{key[:100]}",
                    code="unsupported_parameter",
                )
        content = m.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if isinstance(kind, str) and kind != "text":
                    raise APIError(
                        400,
                        f"{where}.content[{j}] is a {kind[:40]!r} part: this server takes text only.",
                        param=f"{where}.content[{j}].type",
                        code="unsupported_parameter",
                    )


def _empty(value: object) -> bool:
    return value is None or value == [] or value == {}


def lone_surrogate_at(data: object) -> str | None:
    """The path (``messages[0].content``) of the first string holding a lone UTF-16 surrogate (JSON's
    ``"\\ud800"``), which is not text and cannot be tokenized or logged; None if there is none."""
    stack: list[tuple[str, object]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body"
        elif isinstance(value, dict):
            items = list(value.items())
            for key, item in reversed(items):
                if isinstance(key, str) and lone_surrogate_at(key) is not None:  # a key: report its parent
                    return path or "body"
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((f"{path}[{i}]", value[i]))
    return None


class FeedbackRequest(BaseModel):
    """Judgements on one reply (``reply_id``: the ``reply_id`` or the ``id`` of a completion). Give any of
    ``rating`` (with optional ``tags``/``comment``), ``edit`` (the text the reply should have been) and
    ``candidates`` (a pick: this reply was chosen among these sibling replies)."""

    model_config = ConfigDict(extra="forbid")
    reply_id: str = Field(min_length=1, max_length=220)
    rating: Literal[-1, 0, 1] | None = None
    tags: list[str] = Field(default_factory=list, max_length=64)
    comment: str | None = None
    edit: str | None = None
    candidates: list[str] | None = Field(None, min_length=2, max_length=64)
    kind: Literal["regenerate", "compare", "best_of"] = "regenerate"
