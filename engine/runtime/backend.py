"""One interface for a loaded chat model, and the registry that picks its implementation by ``model.backend``.

Everything that chats (the TUI, ``engine generate``, ``engine serve``, best-of-n, the reward and gate checks)
holds a :class:`ChatModel` and never asks which backend answers. A backend is one module with a
``load(profile, home, progress, run_id, adapter_dir) -> ChatModel`` function plus one row in
:data:`BACKENDS`; the module is imported only when a profile uses it, so a llama.cpp or remote profile never
imports torch on the way to its first reply.

Which backend a profile gets (:func:`choose_backend`): ``model.backend`` when set (``local`` is the old name
of ``transformers``); ``auto`` (the default) is, for chatting (:func:`load_chat_model`: the TUI, ``engine
generate``, ``engine serve``), ``llamacpp`` for a GGUF model when llama-cpp-python is installed, and
``transformers`` otherwise. A GGUF profile that cannot have llama.cpp falls back to transformers and says so in
one line (``ChatModel.note``). :func:`load_model` (training, the gate, ``engine eval``, export: code that works
on the weights training made) reads ``auto`` and ``llamacpp`` as ``transformers`` (llama.cpp cannot train, merge or
score a PEFT adapter; it runs the same weights), so nothing below ``engine.train`` and ``engine.reward`` changes backend
behind its back; ``openai`` applies to both.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from engine.errors import UserError

Progress = Callable[[str, "float | None"], None]

LLAMACPP_PIN = "llama-cpp-python==0.3.36"
"""What the README installs (pyproject.toml and constraints.txt pin the same)."""


class ReplyStream(Protocol):
    """One reply being generated: iterate for text pieces; ``record`` is complete once iteration ends."""

    record: dict[str, Any]
    text: str

    def __iter__(self) -> Iterator[str]: ...

    def cancel(self) -> None:
        """Stop within one token; iteration then ends and ``record['stopped']`` is True."""

    def wait(self) -> str:
        """Consume the whole reply and return its text."""


@runtime_checkable
class ChatModel(Protocol):
    """A loaded model, whatever runs it. The generation record of every reply names ``backend``."""

    backend: str
    """The registry name: ``transformers``, ``llamacpp`` or ``openai``."""
    device: Any
    model_id: str
    revision: str
    profile: Any
    note: str | None
    """One line for the person when the profile did not get the backend it asked for (else None)."""

    @property
    def adapter(self) -> str | None:
        """The run id of the adapter replies use, or None for the base model."""

    @property
    def adapters(self) -> dict[str, Any]:
        """Loaded adapters: run id -> folder."""

    def stream(self, messages: list[dict], params: Any = None, system_prompt: str | None = None) -> ReplyStream: ...

    def generate(self, messages: list[dict], params: Any = None,
                 system_prompt: str | None = None) -> tuple[str, dict]: ...

    def load_adapter(self, run_id: str, path: Any) -> None:
        """Make the run's adapter available under ``run_id`` (does not switch to it)."""

    def use_adapter(self, run_id: str | None) -> None:
        """Later replies use ``run_id``'s adapter (None: the base model), without reloading the base."""

    def unload_adapter(self, run_id: str) -> None: ...

    def prompt_messages(self, messages: list[dict], system_prompt: str | None = None) -> list[dict]: ...


@dataclass(frozen=True)
class Backend:
    """One row of the registry."""

    name: str
    module: str
    """Imported when a profile uses it; its ``load(profile, home, progress, run_id, adapter_dir)`` returns a ChatModel."""
    summary: str
    weights_here: bool
    """The weights are read on this machine (so "is the model on disk" applies)."""


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("transformers", "engine.runtime.loading", "in this process with transformers and PyTorch (any model; "
            "training always uses it)", weights_here=True),
    Backend("llamacpp", "engine.runtime.llamacpp", "in this process with llama.cpp (GGUF files; the fastest on a "
            "CPU), no torch", weights_here=True),
    Backend("openai", "engine.runtime.remote", "an OpenAI-compatible server at model.base_url (engine serve, vLLM, "
            "llama.cpp's server, Ollama), no torch", weights_here=False),
)}
ALIASES = {"local": "transformers"}
"""Old names still accepted in profiles and homes."""
AUTO = "auto"


class BackendUnavailable(Exception):
    """A backend's library cannot be used on this machine; ``str(exc)`` is the line said on falling back."""


@dataclass(frozen=True)
class Choice:
    backend: Backend
    note: str | None = None
    """One line when the profile asked for something this machine cannot give."""


def llamacpp_installed() -> bool:
    """llama-cpp-python is importable (found, not imported: that loads its shared library)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it (imports made to fail)
        return False


def fallback_note(profile, why: str) -> str:
    return (f"profile {profile.name!r} chats through transformers (slower on a CPU): {why}; "
            f"`pip install {LLAMACPP_PIN}` makes it use llama.cpp.")


def choose_backend(profile, backend: str | None = None, chat: bool = True) -> Choice:
    """The backend ``profile`` chats through (``chat``; else the one :func:`load_model` uses); ``backend``
    overrides the profile's setting."""
    from engine.runtime.gguf import is_gguf_id

    asked = backend or getattr(profile.model, "backend", AUTO) or AUTO
    name = ALIASES.get(asked, asked)
    gguf = is_gguf_id(profile.model.id)
    if name == AUTO:
        if not gguf or not chat:
            return Choice(BACKENDS["transformers"])
        if llamacpp_installed():
            return Choice(BACKENDS["llamacpp"])
        return Choice(BACKENDS["transformers"], fallback_note(profile, "llama-cpp-python is not installed"))
    if name not in BACKENDS:
        raise UserError(f"model.backend {asked!r} of profile {profile.name!r} is not a backend "
                        f"(choose {', '.join([AUTO, *BACKENDS])}).")
    if name == "llamacpp":
        if not gguf:
            raise UserError(f'profile {profile.name!r} has backend = "llamacpp", which runs GGUF files, but model.id '
                            f"{profile.model.id!r} is not one; point model.id at a .gguf file or use backend = "
                            '"transformers".')
        if not chat:  # training, the gate, export: the weights llama.cpp runs, in transformers
            return Choice(BACKENDS["transformers"])
        if not llamacpp_installed():
            return Choice(BACKENDS["transformers"], fallback_note(profile, "llama-cpp-python is not installed"))
    return Choice(BACKENDS[name])


def load_chat_model(profile, home, progress: Progress | None = None, adapter: str | None = "promoted",
                    backend: str | None = None):
    """:func:`load_model` for chatting: ``auto`` picks llama.cpp for a GGUF model when it is installed."""
    return load_model(profile, home, progress, adapter, backend, chat=True)


def load_model(profile, home, progress: Progress | None = None, adapter: str | None = "promoted",
               backend: str | None = None, chat: bool = False):
    """Load ``profile``'s model through its backend, ready to stream replies (a :class:`ChatModel`).

    ``adapter``: ``"promoted"`` (default: the profile's promoted LoRA adapter, if any), ``"base"`` or None (no
    adapter), or a run id, resolved before anything heavy loads. ``backend`` overrides the profile's choice;
    ``chat``: see :func:`choose_backend` (False: ``auto`` is transformers). ``progress(stage, fraction)`` reports
    loading stages; the last is ``ready``.
    """
    from engine.adapters import resolve_adapter
    from engine.home import Home

    report = progress or (lambda stage, fraction: None)
    home = Home.resolve(home) if not isinstance(home, Home) else home
    run_id, adapter_dir = resolve_adapter(home, profile.name, adapter)  # fail before loading gigabytes
    choice = choose_backend(profile, backend, chat)
    note = choice.note
    try:
        lm = _load(choice.backend, profile, home, report, run_id, adapter_dir)
    except BackendUnavailable as exc:  # installed but unusable (a broken build): the torch path still works
        note = fallback_note(profile, str(exc))
        lm = _load(BACKENDS["transformers"], profile, home, report, run_id, adapter_dir)
    lm.note = note
    return lm


def _load(backend: Backend, profile, home, report: Progress, run_id: str | None, adapter_dir: Path | None):
    module = importlib.import_module(backend.module)
    return module.load(profile, home, report, run_id, adapter_dir)


def chat_messages(profile, messages: list[dict], system_prompt: str | None = None) -> list[dict]:
    """The chat as every backend sends it to the template: the system prompt first (the caller's, else the
    profile's), then role/content pairs; system turns in ``messages`` are dropped (never said twice)."""
    system = profile.system_prompt if system_prompt is None else system_prompt
    out = [{"role": "system", "content": system}] if system else []
    out += [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") != "system"]
    return out
