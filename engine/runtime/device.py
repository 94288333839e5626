"""Pick the device and dtype a profile asks for ("auto": the best this machine has)."""

from __future__ import annotations

from engine.errors import UserError

_DTYPE_NAMES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                "fp32": "float32", "float32": "float32"}


def resolve_device(setting: str) -> str:
    """``auto``: cuda, then mps, then cpu. An explicit device that is not there is a UserError."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {setting!r} was asked for but no CUDA GPU is available; set device = \"auto\" or \"cpu\" in the profile.")
        index = int(setting.split(":", 1)[1]) if ":" in setting else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"device {setting!r} does not exist (this machine has {torch.cuda.device_count()} GPU(s)).")
    elif setting == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError("device 'mps' was asked for but Apple MPS is not available; set device = \"auto\" or \"cpu\".")
    return setting


def resolve_dtype(setting: str, device: str):
    """``auto``: bf16 on GPUs that support it, fp16 on other GPUs (and mps), fp32 on cpu.

    The one owner of that rule. CPU stays fp32: measured on SmolLM2-135M (bench/decode.py
    ``--model smollm2``, bench/README.md "Real model (issue 17)"), bf16 weights decoded at 0.85x fp32's
    tokens/s on a CPU whose torch capability is AVX2 (no AVX512-BF16/AMX kernels), and greedy output
    left fp32's first 16 tokens on 1 of 5 fixed prompts, outside the documented tolerance (all 5 the same).
    A CPU with AVX512-BF16/AMX was not available to measure, so no rule picks bf16 on one.
    """
    import torch

    if setting == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "mps":
            return torch.float16
        return torch.float32
    return getattr(torch, _DTYPE_NAMES[setting])


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``bf16`` (what profiles and records use)."""
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(str(dtype).replace("torch.", ""), str(dtype))
