"""What the app needs from a model: engine.runtime.backend's ChatModel, so tests can inject a fake one.

The real implementation is ``engine.runtime.load_chat_model`` (imported inside the loading worker, never at import
time, so the screen paints before anything heavy loads; a llama.cpp or remote profile never imports torch).
``create_app(generator_factory=...)`` takes any callable with the same shape as :data:`GeneratorFactory`.
"""

from __future__ import annotations

from typing import Any, Callable

from engine.home import Home
from engine.profiles import Profile
from engine.runtime.backend import ChatModel, Progress, ReplyStream

Generator = ChatModel
"""The app's name for a loaded model (the subset it uses: ``stream``, ``load_adapter``, ``use_adapter``,
``adapter``, ``device``, ``model_id``)."""

__all__ = ["Generator", "GeneratorFactory", "Progress", "ReplyStream", "build_params", "load_real_model"]

GeneratorFactory = Callable[[Profile, Home, Progress], Generator]


def load_real_model(profile: Profile, home: Home, progress: Progress) -> Generator:
    """The default factory: the profile's backend through the engine runtime (heavy imports happen here, inside
    the worker).

    The base model only: the app loads the promoted adapter itself afterwards, so a broken adapter leaves a
    working base model with a warning instead of no model at all. A profile that did not get the backend it
    asked for says so in ``lm.note`` (one line the app shows).
    """
    from engine.runtime import choose_backend, load_chat_model

    if choose_backend(profile).backend.name == "transformers":
        progress("importing torch", None)  # the longest silent step on a cold start
        import torch  # noqa: F401
        import transformers  # noqa: F401
    progress("preparing the model", None)
    return load_chat_model(profile, home, progress=progress, adapter="base")


def build_params(profile: Profile, **overrides: Any) -> Any:
    """Generation parameters for one reply: None (the profile's own) unless something is overridden."""
    if not overrides:
        return None
    from engine.runtime.params import GenerationParams  # pure dataclass, no torch

    return GenerationParams.from_profile(profile, **overrides)
