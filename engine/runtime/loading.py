"""Load a profile's model and tokenizer: resolve where it lives, pick device/dtype, and turn every
failure a user can cause (not downloaded, bad path, pickle-only weights, out of memory) into one
UserError sentence instead of a traceback."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from engine.errors import UserError, first_line
from engine.home import Home
from engine.safe_files import check_tree

Progress = Callable[[str, "float | None"], None]
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _is_offline() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def _where(profile) -> str:
    return f" in {profile.path}" if profile.path else ""


def check_local_model_dir(path: Path, shown: str) -> None:
    """A local model folder must exist and hold safetensors weights; pickle files are never loaded."""
    if not path.exists():
        raise UserError(f"model path {shown!r} does not exist; fix model.id or download the model there.")
    if not path.is_dir():
        raise UserError(f"model path {shown!r} is a file, not a model folder (config.json + *.safetensors).")
    if not (path / "config.json").is_file():
        raise UserError(f"model folder {shown!r} has no config.json; point model.id at a saved model folder.")
    if not any(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise UserError(
                f"model folder {shown!r} has only pickle weights ({', '.join(pickles[:3])}), which tuneloop "
                "refuses to load because they can run code; convert them to safetensors."
            )
        raise UserError(f"model folder {shown!r} has no *.safetensors weights.")


def resolve_source(profile, home: Home, progress: Progress | None = None) -> tuple[str, Path | None]:
    """``(what to pass to from_pretrained, local folder or None for a hub id)``. A GGUF file (a path or
    ``pkg:<package>/<file>.gguf``) is converted once into ``home/models/`` (engine.runtime.gguf)."""
    if profile.is_demo:
        from engine.demo import ensure_demo_model

        path = ensure_demo_model(home)
        return str(path), path
    mid = profile.model.id
    from engine.runtime import gguf

    if gguf.is_gguf_id(mid):
        home.check_dir(home.models_dir, create=True)  # a linked models/ folder never receives the conversion
        path = gguf.ensure_converted(mid, home, progress)
        check_tree(path, home)  # converted into home/models/: no link to it or in it (opened by path below)
        return str(path), path
    path = Path(mid).expanduser()
    if mid.startswith(("/", ".", "~")) or path.exists():
        check_local_model_dir(path, mid)
        path = path.resolve()
        return str(path), path
    return mid, None


def local_revision(path: Path) -> str:
    """A short content fingerprint of a local model: config, tokenizer, and each safetensors header
    plus samples of its data (hashing every byte of a 16 GB model would take longer than loading it)."""
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "model.safetensors.index.json"):
        f = path / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        size = f.stat().st_size
        h.update(f.name.encode() + b"\0" + str(size).encode())
        with f.open("rb") as fh:
            head = fh.read(8)
            header_len = int.from_bytes(head, "little") if len(head) == 8 else 0
            h.update(fh.read(min(header_len, 100_000_000)))
            for offset in (8 + header_len, max(8 + header_len, size - 65536)):
                fh.seek(offset)
                h.update(fh.read(65536))
    return "sha256:" + h.hexdigest()[:16]


def _friendly(exc: BaseException, profile, source: str) -> UserError:
    """Map a loading failure to one sentence that says what to do."""
    mid = profile.model.id
    text = first_line(exc)
    low = str(exc).lower()
    if "out of memory" in low or type(exc).__name__ == "OutOfMemoryError":
        return UserError(
            f"out of memory loading {mid!r} on {profile.model.device}; close other programs, pick a smaller "
            f"model, or set model.device = \"cpu\"{_where(profile)}."
        )
    if "trust_remote_code" in low and not profile.model.trust_remote_code:
        return UserError(
            f"model {mid!r} needs its own Python code to load; set model.trust_remote_code = true{_where(profile)} "
            "only if you trust its authors."
        )
    if "safetensors" in low and ("does not appear" in low or "no file named" in low or "not found" in low):
        return UserError(f"model {mid!r} has no safetensors weights; tuneloop loads safetensors only (pickle files can run code).")
    if isinstance(exc, (OSError, ValueError)) and not Path(source).exists():
        if _is_offline():
            return UserError(
                f"model {mid!r} is not in the local Hugging Face cache and downloads are off (HF_HUB_OFFLINE); "
                f"download it first (`hf download {mid}`) or use `--profile demo`."
            )
        return UserError(
            f"cannot load model {mid!r} ({text}); check model.id{_where(profile)}, your network or `hf auth login`, "
            "or use `--profile demo`."
        )
    return UserError(f"cannot load model {mid!r} from {source} ({text}).")


def load(profile, home: Home, progress: Progress, run_id: str | None, adapter_dir: Path | None):
    """The ``transformers`` backend (engine.runtime.backend): ``profile``'s model as a LoadedModel, with the
    adapter ``run_id`` (already resolved to ``adapter_dir``) attached and in use. ``progress(stage, fraction)``
    is called with ``tokenizer``, ``weights`` (0..1 as tensors load), ``device`` and ``ready``.
    """
    import torch

    from engine.routed_progress import routed_progress
    from engine.runtime.device import resolve_device, resolve_dtype
    from engine.runtime.model import LoadedModel

    report = progress
    source, local = resolve_source(profile, home, report)
    device = resolve_device(profile.model.device)
    dtype = resolve_dtype(profile.model.dtype, device)
    common = {"trust_remote_code": profile.model.trust_remote_code}
    if local is None and profile.model.revision:
        common["revision"] = profile.model.revision

    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        report("tokenizer", None)
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        report("weights", 0.0)
        kwargs = dict(common, dtype=dtype, use_safetensors=True)
        if device != "cpu":
            kwargs["device_map"] = {"": device}  # load straight onto the GPU, no CPU copy first
        with routed_progress(lambda f: report("weights", f)):
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        report("device", None)
        if device == "cpu":
            model.to(device)  # type: ignore[arg-type]  # transformers' stubs type .to's self oddly
        model.eval()
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError, torch.OutOfMemoryError) as exc:
        raise _friendly(exc, profile, source) from None

    if profile.model.chat_template:
        tokenizer.chat_template = profile.model.chat_template
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"model {profile.model.id!r} has no chat template; set model.chat_template{_where(profile)}."
        )
    if profile.model.revision:
        revision = profile.model.revision
    elif local is None:
        revision = getattr(model.config, "_commit_hash", None) or "unknown"
    else:
        revision = local_revision(local)

    if profile.model.fast_path and device.startswith("cuda"):
        # Static KV cache: generate() compiles the decoding step once and replays it after.
        model.generation_config.cache_implementation = "static"

    lm = LoadedModel(model=model, tokenizer=tokenizer, profile=profile, home=home, device=device,
                     torch_dtype=dtype, revision=revision, path=local)
    if run_id is not None:
        lm.load_adapter(run_id, adapter_dir)
        lm.use_adapter(run_id)
    report("ready", 1.0)
    return lm

