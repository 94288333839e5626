"""A PEFT LoRA adapter as a GGUF LoRA file, the form llama.cpp (and Ollama's ``ADAPTER``) loads beside a base GGUF.

Work in progress: the signature is fixed so the llama.cpp backend can call it."""

from __future__ import annotations

from pathlib import Path

from engine.errors import UserError

GGUF_LORA_FILE = "adapter.gguf"


def ensure_gguf_lora(adapter_dir: Path, base_gguf: Path) -> Path:
    """The GGUF LoRA file for ``adapter_dir`` (converted once, written beside the adapter atomically, reused while
    the adapter's files are unchanged). A damaged adapter raises UserError (one sentence)."""
    raise UserError("converting an adapter to GGUF is not built yet.")
