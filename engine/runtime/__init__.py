"""Model runtime: load a profile's model, stream replies, switch LoRA adapters (see docs/ARCHITECTURE.md).

Importing this package is cheap: torch and transformers are imported inside the functions that
need them, so the TUI can paint before the model loads.
"""

from engine.adapters import resolve_adapter
from engine.runtime.backend import BACKENDS, ChatModel, ReplyStream, choose_backend, load_chat_model, load_model
from engine.runtime.model import LoadedModel
from engine.runtime.params import GenerationParams
from engine.runtime.streaming import Generation

__all__ = ["BACKENDS", "ChatModel", "Generation", "GenerationParams", "LoadedModel", "ReplyStream", "choose_backend",
           "load_chat_model", "load_model", "resolve_adapter"]
