"""A PEFT LoRA adapter as a GGUF LoRA file: the form llama.cpp (``--lora``), llama-cpp-python (``lora_path``) and
Ollama (a Modelfile's ``ADAPTER``) load beside the base GGUF the adapter was trained on.

The file is what llama.cpp's own ``convert_lora_to_gguf.py`` writes, made from the adapter's two files alone (no
torch, no base safetensors): ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``, and
for every adapted linear layer the tensors ``<base tensor name>.lora_a`` (PEFT's ``lora_A``, rank x in) and
``.lora_b`` (``lora_B``, out x rank), named by gguf's own name map for the base's architecture. llama.cpp scales
``B @ A`` by ``alpha / rank`` as PEFT does. Two things differ from PEFT's view and are folded in here:

- llama-architecture GGUF files store ``q_proj`` / ``k_proj`` rows permuted for llama.cpp's rotary layout
  (``convert_hf_to_gguf``'s ``LlamaModel.permute``; transformers undoes it when it reads the GGUF, so adapters
  train on the unpermuted rows). The same row permutation applies to those layers' ``lora_b``.
- rsLoRA scales by ``alpha / sqrt(rank)``: ``lora_b`` is multiplied by ``sqrt(rank)`` so ``alpha / rank`` gives it.

The file goes beside the adapter folder (``runs/<profile>/<run>/adapter.gguf``), written by one rename, and
records a hash of what it was made from (``tuneloop.source``), so it is made again only when the adapter's
files (or the base's shape) change. ``lora_deltas`` is shared with the merged GGUF export (engine/runtime/export.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from engine.errors import UserError, first_line
from engine.runtime.gguf_header import read_header

FORMAT = 1
"""Bumped when the conversion changes, so older files are made again."""
SOURCE_KEY = "tuneloop.source"
ADAPTER_KEY = "tuneloop.adapter"
PERMUTE_QK = {"llama"}
"""Architectures whose GGUF conversion permutes the q/k rows (llama.cpp's LlamaModel.permute)."""
SUPPORTED = {"llama", "qwen2", "qwen3"}
"""Architectures checked end to end (llama: SmolLM2, Llama, Mistral; qwen2/qwen3 need no permutation)."""
_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def gguf_lora_path(adapter_dir: Path) -> Path:
    """Where the GGUF LoRA of ``adapter_dir`` lives: beside it, ``<folder>.gguf`` (``runs/<p>/<run>/adapter.gguf``)."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent / f"{adapter_dir.name}.gguf"


@dataclass(frozen=True)
class BaseGGUF:
    """What the conversion needs from the base GGUF: its architecture, head counts and tensor shapes."""

    path: Path
    arch: str
    n_blocks: int
    n_head: int
    n_head_kv: int
    shapes: dict[str, tuple[int, ...]]  # tensor name -> ggml shape (ne0 = the row length, i.e. "in")

    @property
    def key(self) -> str:
        return f"{self.arch}/{self.n_blocks}/{self.n_head}/{self.n_head_kv}"


def read_base(base_gguf: Path) -> BaseGGUF:
    """The base GGUF's architecture and tensor shapes (the header only; nothing is de-quantized)."""
    base_gguf = Path(base_gguf)
    try:
        kv, tensors = read_header(base_gguf)
    except (OSError, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise UserError(f"cannot read the base GGUF {base_gguf} ({first_line(exc)}); check the profile's model.id.") from None
    arch = kv.get("general.architecture")
    if not isinstance(arch, str):
        raise UserError(f"{base_gguf} names no architecture (general.architecture); it is not a model GGUF.")
    if arch not in SUPPORTED:
        raise UserError(f"tuneloop converts adapters to GGUF for {', '.join(sorted(SUPPORTED))} models, and "
                        f"{base_gguf.name} is '{arch}'; export the merged safetensors folder instead (--format safetensors).")
    n_blocks = kv.get(f"{arch}.block_count")
    n_head = kv.get(f"{arch}.attention.head_count")
    n_head_kv = kv.get(f"{arch}.attention.head_count_kv", n_head)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n_blocks, n_head, n_head_kv)):
        raise UserError(f"{base_gguf} lacks its block or head counts ({arch}.block_count, "
                        f"{arch}.attention.head_count); it is not a complete model GGUF.")
    return BaseGGUF(base_gguf, arch, int(n_blocks), int(n_head), int(n_head_kv), tensors)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Reading the adapter (numpy only: converting must not import torch)


def read_safetensors(data: bytes, where: Path) -> dict[str, Any]:
    """Tensors of a safetensors file as numpy arrays (F32/F16/BF16/F64); anything else is one sentence."""
    import numpy as np

    def damaged(why: str) -> UserError:
        return UserError(f"{where} is damaged ({why}); the adapter cannot be converted, so pick another run or train a new one.")

    if len(data) < 8:
        raise damaged("shorter than a safetensors header")
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise damaged("no readable header") from None
    if not isinstance(header, dict):
        raise damaged("no readable header")
    out = {}
    body = memoryview(data)[8 + n:]
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
            raw = body[start:end]
            if len(raw) != end - start or start < 0:
                raise ValueError("outside the file")
            if dtype == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            elif dtype in _DTYPES:
                arr = np.frombuffer(raw, dtype=_DTYPES[dtype]).astype(np.float32)
            else:
                raise damaged(f"tensor {name} is {dtype}, not a float type")
            out[name] = arr.reshape(shape)
        except UserError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise damaged(f"tensor {name}: {first_line(exc)}") from None
    return out


@dataclass
class LoraDelta:
    """One adapted layer, in the base GGUF's layout: the update is ``scale * b @ a`` on ``name``."""

    name: str  # the base tensor, e.g. "blk.0.attn_q.weight"
    a: Any  # (rank, in) float32
    b: Any  # (out, rank) float32, q/k rows permuted as the base's, rsLoRA folded in
    scale: float  # alpha / rank, as llama.cpp applies it


def lora_deltas(adapter_dir: Path, base: BaseGGUF, files: tuple[bytes, bytes] | None = None) -> tuple[float, list[LoraDelta]]:
    """``(alpha, deltas)``: the adapter's layers named and laid out as the base GGUF's tensors. A damaged adapter,
    or one that does not fit this base, is one sentence."""
    import gguf
    import numpy as np

    from engine.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    adapter_dir = Path(adapter_dir)
    cfg_bytes, weights = files if files is not None else read_adapter_files(adapter_dir)
    cfg = json.loads(cfg_bytes)
    where = adapter_dir / ADAPTER_CONFIG
    if str(cfg.get("peft_type") or "LORA").upper() != "LORA":
        raise UserError(f"{where} is a {cfg.get('peft_type')} adapter; only LoRA adapters convert to GGUF.")
    unsupported = [what for key, what in (("use_dora", "DoRA"), ("modules_to_save", "fully trained modules"),
                                          ("alpha_pattern", "per-layer alpha"), ("lora_bias", "LoRA biases"))
                   if cfg.get(key)]
    if unsupported:
        raise UserError(f"{where} uses {', '.join(unsupported)}, which a GGUF LoRA cannot hold; export the merged model "
                        "(--format gguf) instead.")
    r, alpha = cfg.get("r"), cfg.get("lora_alpha")
    if not isinstance(r, int) or r <= 0 or not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise UserError(f"{where} has no positive r and lora_alpha; the adapter is damaged.")
    rslora = bool(cfg.get("use_rslora"))
    tensors = read_safetensors(weights, adapter_dir / ADAPTER_WEIGHTS)
    names = gguf.get_tensor_name_map(_arch_enum(base.arch), base.n_blocks)
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in tensors.items():
        stem = key.removeprefix("base_model.model.")
        for part in ("lora_A", "lora_B"):
            marker = f".{part}."
            if marker in stem:
                module = stem.split(marker)[0]
                pairs.setdefault(module, {})[part] = value
                break
        else:
            what = ("embedding LoRA" if "lora_embedding" in key else f"tensor {key}")
            raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS} holds {what}, which a GGUF LoRA cannot hold; export the "
                            "merged model (--format gguf) instead.")
    if not pairs:
        raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS} holds no LoRA weights; the adapter is damaged.")
    deltas = []
    for module, pair in sorted(pairs.items()):
        a, b = pair.get("lora_A"), pair.get("lora_B")
        if a is None or b is None or a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
            raise UserError(f"{adapter_dir / ADAPTER_WEIGHTS} has an incomplete LoRA pair for {module}; the adapter is damaged.")
        found = names.get_type_and_name(module + ".weight", try_suffixes=(".weight",))
        if found is None:
            raise UserError(f"the adapter in {adapter_dir} changes {module}, which {base.arch} GGUF files have no tensor "
                            "for; export the merged safetensors folder instead (--format safetensors).")
        kind, name = found
        shape = base.shapes.get(name)
        if shape is None or len(shape) != 2 or shape[0] != a.shape[1] or shape[1] != b.shape[0]:
            have = "no such tensor" if shape is None else f"shape {list(shape)}"
            raise UserError(f"the adapter in {adapter_dir} does not fit {base.path.name} ({name}: the adapter is "
                            f"{b.shape[0]}x{a.shape[1]}, the base has {have}); it was trained on another model.")
        rank = a.shape[0]
        b = np.ascontiguousarray(b, dtype=np.float32)
        if base.arch in PERMUTE_QK and kind in (gguf.MODEL_TENSOR.ATTN_Q, gguf.MODEL_TENSOR.ATTN_K):
            heads = base.n_head if kind == gguf.MODEL_TENSOR.ATTN_Q else base.n_head_kv
            b = permute_rows(b, heads)
        if rslora:  # PEFT: alpha / sqrt(rank); llama.cpp: alpha / rank
            b = b * np.float32(np.sqrt(rank))
        deltas.append(LoraDelta(name, np.ascontiguousarray(a, dtype=np.float32), b, float(alpha) / rank))
    return float(alpha), deltas


def permute_rows(weights, n_head: int):
    """llama.cpp's q/k row order (convert_hf_to_gguf's LlamaModel.permute) for a matrix whose rows are a
    projection's outputs: within each head, the two rotary halves are interleaved."""
    out = weights.shape[0]
    if out % (2 * n_head):
        raise UserError(f"a q/k projection of {out} rows does not split into {n_head} heads; the adapter does not fit the base.")
    return weights.reshape(n_head, 2, out // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _arch_enum(arch: str):
    import gguf

    for enum, name in gguf.MODEL_ARCH_NAMES.items():
        if name == arch:
            return enum
    raise UserError(f"the gguf package does not know the architecture '{arch}'; upgrade it (pip install -U gguf).")


def read_adapter_files(adapter_dir: Path) -> tuple[bytes, bytes]:
    """The adapter's config and weights, read without following links; a damaged adapter is one sentence."""
    from engine.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, read_adapter_config
    from engine.safe_files import read_bytes

    read_adapter_config(adapter_dir)  # the folder, the config's types and the weights' byte ranges
    try:
        return read_bytes(adapter_dir / ADAPTER_CONFIG), read_bytes(adapter_dir / ADAPTER_WEIGHTS)
    except OSError as exc:
        raise UserError(f"cannot read the adapter in {adapter_dir} ({exc.strerror or exc}).") from None


# ---------------------------------------------------------------------------------------------
# Writing


def write_gguf(dest: Path, fill: Callable[[IO[bytes]], None]) -> Path:
    """Write ``dest`` through a temp file in its folder and one rename (mode 0600); a failure leaves nothing.
    Inside a tuneloop home the folder is reached without following links."""
    from engine.runs import as_write_error
    from engine.safe_files import root_of, write_atomic

    dest = Path(dest).absolute()
    try:
        return write_atomic(dest, fill, root_of(dest))
    except UserError:
        raise
    except Exception as exc:
        said = as_write_error(exc, dest.parent, str(dest))
        if said is not None:
            raise said from None
        raise


def attach(writer, out: IO[bytes]) -> None:
    """Point a GGUFWriter whose KV and tensor infos are added at the open file ``out`` (gguf opens paths itself
    otherwise, and ours go through :func:`write_gguf`); then write_header_to_file etc. write there."""
    from gguf.gguf_writer import WriterState

    writer.fout = [out]
    writer.state = WriterState.EMPTY


def _source_key(cfg: bytes, weights: bytes, base: BaseGGUF) -> str:
    h = hashlib.sha256(f"tuneloop-gguf-lora/{FORMAT}/{base.key}\n".encode())
    for blob in (cfg, weights):
        h.update(len(blob).to_bytes(8, "little"))
        h.update(blob)
    return h.hexdigest()


def _recorded_key(path: Path) -> str | None:
    """The source key a converted file records; None when it is missing, damaged or a link."""
    from engine.safe_files import open_file

    try:
        os.close(open_file(path))  # refuses a link planted in its place
        value = read_header(path)[0].get(SOURCE_KEY)
    except (OSError, ValueError, UnicodeDecodeError, struct.error, UserError):
        return None
    return value if isinstance(value, str) else None


def write_gguf_lora(adapter_dir: Path, base: BaseGGUF, dest: Path, files: tuple[bytes, bytes] | None = None,
                    label: str = "") -> Path:
    """Convert ``adapter_dir`` for ``base`` into ``dest`` (one rename)."""
    import gguf

    files = files if files is not None else read_adapter_files(adapter_dir)
    alpha, deltas = lora_deltas(adapter_dir, base, files)
    key = _source_key(*files, base)

    def fill(out):
        writer = gguf.GGUFWriter(None, base.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_string(SOURCE_KEY, key)
        if label:
            writer.add_string(ADAPTER_KEY, label)
        for d in deltas:
            writer.add_tensor(d.name + ".lora_a", d.a)
            writer.add_tensor(d.name + ".lora_b", d.b)
        attach(writer, out)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()

    return write_gguf(dest, fill)


def ensure_gguf_lora(adapter_dir: Path, base_gguf: Path) -> Path:
    """The GGUF LoRA file for ``adapter_dir`` on ``base_gguf``: converted once, written beside the adapter
    (``<adapter folder>.gguf``) by one rename, reused while the adapter's files (and the base's architecture and
    head counts) are unchanged. A damaged adapter, or one that does not fit the base, raises UserError (one sentence)."""
    adapter_dir = Path(adapter_dir)
    base = read_base(Path(base_gguf))
    files = read_adapter_files(adapter_dir)
    dest = gguf_lora_path(adapter_dir)
    if dest.exists() and _recorded_key(dest) == _source_key(*files, base):
        return dest
    label = adapter_dir.parent.name if adapter_dir.name == "adapter" else adapter_dir.name
    return write_gguf_lora(adapter_dir, base, dest, files, label=label)


def convert_chosen(home, profile, run_id: str | None) -> str | None:
    """Best effort, after a promotion or ``engine adapters use``: make the run's GGUF LoRA now, so the llama.cpp
    chat finds it ready. Only for a profile whose base is a GGUF file. Returns one line to show (None: nothing
    to do); never raises for a problem with the adapter or the disk."""
    if run_id is None:
        return None
    from engine.runtime.gguf import is_gguf_id, locate

    if not is_gguf_id(profile.model.id):
        return None
    try:
        from engine.adapters import adapter_path

        path = ensure_gguf_lora(adapter_path(home, profile.name, run_id), locate(profile.model.id))
    except UserError as exc:
        return f"the adapter was not converted for llama.cpp: {exc}"
    except Exception as exc:  # noqa: BLE001 - the promotion stands whatever happens here
        return f"the adapter was not converted for llama.cpp ({type(exc).__name__}: {first_line(exc)})."
    return f"llama.cpp LoRA: {path}"
