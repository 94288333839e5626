"""Request bodies of the endpoints (pydantic). Fields a client may send that tuneloop does not use
(``user``, ``logprobs: false``, ``presence_penalty`` ...) are accepted and ignored, as OpenAI's
clients send several of them by default; what would change the reply and is not supported (``n`` > 1,
tools) is refused with a 400 naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.settings import SEED_MAX

MAX_STOPS = 4  # as OpenAI
MAX_TOKENS = 1_000_000  # the [generation] max_new_tokens bound


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


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, le=1)
    tools: list | None = Field(None, max_length=0)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value):
        stops = [value] if isinstance(value, str) else (value or [])
        if len(stops) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences are allowed")
        if any(s == "" for s in stops):
            raise ValueError("a stop sequence may not be empty")
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


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
