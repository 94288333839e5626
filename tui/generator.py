"""What the app needs from a model, as a small protocol, so tests can inject a fake one.

The real implementation is ``engine.runtime.load_model`` (imported inside the loading worker, never
at import time, so the screen paints before torch loads). ``create_app(generator_factory=...)``
takes any callable with the same shape as :data:`GeneratorFactory`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol

from engine.home import Home
from engine.profiles import Profile

Progress = Callable[[str, "float | None"], None]


class ReplyStream(Protocol):
    """One reply being generated: iterate for text pieces; ``record`` is complete once iteration ends."""

    record: dict[str, Any]

    def __iter__(self) -> Iterator[str]: ...

    def cancel(self) -> None:
        """Stop within one token; iteration then ends and ``record['stopped']`` is True."""


class Generator(Protocol):
    """A loaded model (``engine.runtime.LoadedModel`` satisfies it)."""

    device: Any
    model_id: str
    adapter: str | None

    def stream(self, messages: list[dict], params: Any = None, system_prompt: str | None = None) -> ReplyStream: ...

    def load_adapter(self, run_id: str, path) -> None: ...

    def use_adapter(self, run_id: str | None) -> None: ...


GeneratorFactory = Callable[[Profile, Home, Progress], Generator]


def load_real_model(profile: Profile, home: Home, progress: Progress) -> Generator:
    """The default factory: the engine runtime (heavy imports happen here, inside the worker).

    The base model only: the app loads the promoted adapter itself afterwards, so a broken adapter
    leaves a working base model with a warning instead of no model at all.
    """
    progress("importing torch", None)  # the longest silent step on a cold start
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from engine.runtime import load_model

    progress("preparing the model", None)
    return load_model(profile, home, progress=progress, adapter="base")


def build_params(profile: Profile, **overrides: Any) -> Any:
    """Generation parameters for one reply: None (the profile's own) unless something is overridden."""
    if not overrides:
        return None
    from engine.runtime.params import GenerationParams  # pure dataclass, no torch

    return GenerationParams.from_profile(profile, **overrides)
