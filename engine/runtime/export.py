"""``engine export-model``: the base model with a LoRA adapter merged in, saved as a plain model folder
(safetensors weights, config, generation config, tokenizer and chat template) that transformers, vLLM
and Ollama's safetensors import load without peft or tuneloop."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError

INFO_FILE = "tuneloop_export.json"


@dataclass
class Exported:
    out: Path
    adapter: str | None  # run id merged in (None: the base model as it is)
    model_id: str
    revision: str


def check_out_dir(out: Path) -> None:
    """Refuse a folder that holds something, or a path under a file; missing parents are created later."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose a new --out folder.")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{ancestor} is a file, so {out} cannot be created under it; choose another --out.")


def make_parents(out: Path) -> None:
    """Create the folders above ``out`` that do not exist yet (``--out ~/models/my-tuned`` without ~/models)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder {out.parent} ({exc.strerror or exc}); choose another --out.") from None


def export_model(profile, home, adapter: str | None, out: Path, progress=None) -> Exported:
    """Load the base (the profile's device and dtype), merge ``adapter`` ("promoted", a run id, or
    "base"/None), and write the folder in one rename (a failed export leaves no half folder)."""
    from engine.adapters import check_adapter_base, resolve_adapter
    from engine.runtime import load_model

    out = Path(out).expanduser().absolute()
    check_out_dir(out)
    run_id, adapter_dir = resolve_adapter(home, profile.name, adapter)
    lm = load_model(profile, home, progress=progress, adapter="base")
    model = lm.model
    if run_id is not None and adapter_dir is not None:
        from peft import PeftModel

        from engine.quiet import quiet_loading

        check_adapter_base(adapter_dir, [lm.model_id] + ([str(lm.path)] if lm.path else []))
        with quiet_loading():
            model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False).merge_and_unload()
    make_parents(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        lm.tokenizer.save_pretrained(str(tmp))  # with the chat template the profile uses
        info = {
            "profile": profile.name,
            "model": lm.model_id,
            "revision": lm.revision,
            "adapter": run_id,
            "merged": run_id is not None,
            "dtype": lm.dtype,
            "created": time.time(),
        }
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.rename(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from engine.runs import as_write_error

        said = as_write_error(exc, out.parent, f"the exported model to {out}")
        if said is not None:
            raise said from None
        raise
    return Exported(out, run_id, lm.model_id, lm.revision)


def how_to_load(out: Path) -> str:
    """What to type to use the folder elsewhere."""
    return "\n".join(
        [
            f"transformers:  AutoModelForCausalLM.from_pretrained({str(out)!r}), AutoTokenizer.from_pretrained({str(out)!r})",
            f"vLLM:          vllm serve {out}",
            f"Ollama:        printf 'FROM {out}\\n' > Modelfile && ollama create my-model -f Modelfile && ollama run my-model",
        ]
    )


# ---------------------------------------------------------------------------------------------
# GGUF out (issue 26): for a profile whose base is a GGUF file, without torch. The merged model copies the base
# file's metadata (architecture, tokenizer, chat template) and writes every tensor de-quantized, with the adapter's
# update added, as f16 or q8_0; the LoRA alone is engine.runtime.gguf_lora's file.

GGUF_DTYPES = ("f16", "q8_0")
GGUF_FORMATS = ("gguf", "gguf-lora")


def check_out_file(out: Path) -> None:
    """Refuse an --out for a GGUF export that is not a new ``.gguf`` file in a folder that can exist."""
    if out.suffix.lower() != ".gguf":
        raise UserError(f"--out {out} must name the .gguf file to write (for example {out.with_suffix('.gguf').name}).")
    if out.exists() or out.is_symlink():
        raise UserError(f"{out} already exists; choose a new --out file.")
    check_out_dir(out.parent / f".{out.name}.new")  # the parents are folders or can be made


def _gguf_base(profile) -> Path:
    from engine.runtime.gguf import is_gguf_id, locate

    if not is_gguf_id(profile.model.id):
        raise UserError(f"GGUF export needs a profile whose model.id is a GGUF file, and {profile.name}'s is "
                        f"{profile.model.id!r}; export the safetensors folder (--format safetensors) and convert it with "
                        "llama.cpp's convert_hf_to_gguf.py.")
    return locate(profile.model.id)


def _gguf_adapter(profile, home, adapter: str | None, base: Path) -> tuple[str | None, Path | None]:
    from engine.adapters import check_adapter_base, resolve_adapter
    from engine.runtime.gguf import folder_name

    run_id, adapter_dir = resolve_adapter(home, profile.name, adapter)
    if run_id is not None and adapter_dir is not None:
        check_adapter_base(adapter_dir, [profile.model.id, str(home.models_dir / folder_name(base))])
    return run_id, adapter_dir


def export_gguf_lora(profile, home, adapter: str | None, out: Path) -> Exported:
    """The adapter alone as a GGUF LoRA for the profile's base GGUF (Ollama's ADAPTER, llama.cpp's --lora)."""
    from engine.runtime.gguf_lora import read_base, write_gguf_lora

    out = Path(out).expanduser().absolute()
    check_out_file(out)
    base = _gguf_base(profile)
    run_id, adapter_dir = _gguf_adapter(profile, home, adapter, base)
    if run_id is None or adapter_dir is None:
        raise UserError(f"profile {profile.name} uses the base model, so there is no adapter to export; name a run with "
                        "--adapter RUN (see `engine adapters`).")
    make_parents(out)
    write_gguf_lora(adapter_dir, read_base(base), out, label=run_id)
    return Exported(out, run_id, profile.model.id, base.name)


def export_gguf(profile, home, adapter: str | None, out: Path, dtype: str = "f16", progress=None) -> Exported:
    """The base GGUF with the adapter merged in, every matrix as ``dtype`` (f16, or q8_0 where a row splits into
    32-value blocks), vectors as f32; metadata and tokenizer copied from the base file."""
    from engine.runtime.gguf_lora import lora_deltas, read_base

    if dtype not in GGUF_DTYPES + ("f32",):  # f32: the exact de-quantized weights (tests, bench)
        raise UserError(f"--dtype {dtype!r} is not one of {', '.join(GGUF_DTYPES)}.")
    out = Path(out).expanduser().absolute()
    check_out_file(out)
    base_path = _gguf_base(profile)
    run_id, adapter_dir = _gguf_adapter(profile, home, adapter, base_path)
    base = read_base(base_path)
    deltas = lora_deltas(adapter_dir, base)[1] if adapter_dir is not None else []
    make_parents(out)
    write_merged_gguf(base_path, deltas, out, dtype, label=run_id or "", progress=progress)
    return Exported(out, run_id, profile.model.id, base_path.name)


def write_merged_gguf(base_path: Path, deltas: list, out: Path, dtype: str = "f16", label: str = "", progress=None) -> Path:
    """``base_path``'s metadata and tokenizer with every tensor de-quantized, ``deltas`` (engine.runtime.gguf_lora's
    LoraDelta: the adapter's updates in the base's layout) added, stored as ``dtype`` (f16 / q8_0 / f32), written to
    ``out`` by one rename. With no deltas it is the base de-quantized (what llama.cpp can run with transformers'
    numbers: its Q4_1 kernels round activations to 8 bits)."""
    import gguf
    import numpy as np

    from engine.runtime.gguf_lora import attach, read_base, write_gguf

    base = read_base(base_path)
    by_name = {d.name: d for d in deltas}
    reader = gguf.GGUFReader(base_path)
    want, file_type = {"f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
                       "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
                       "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32)}[dtype]
    report = progress or (lambda stage, fraction: None)

    writer = gguf.GGUFWriter(None, base.arch)
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        if not field.types:
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY and len(field.types) > 1 else None
        if sub == gguf.GGUFValueType.ARRAY:
            continue  # nested arrays: none in the architectures we convert
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(file_type)
    if label:
        writer.add_string("tuneloop.adapter", label)

    plan = []  # (tensor, output type, numpy shape)
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))  # numpy order: rows, row length
        kind = gguf.GGMLQuantizationType.F32
        if len(shape) >= 2:
            kind = want
            if kind == gguf.GGMLQuantizationType.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[kind][0]:
                kind = gguf.GGMLQuantizationType.F16  # a row that does not split into blocks (llama.cpp does the same)
        if kind == gguf.GGMLQuantizationType.Q8_0:
            byte_shape = gguf.quant_shape_to_byte_shape(shape, kind)
            writer.add_tensor_info(t.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=kind)
        else:
            np_dtype = np.dtype(np.float16 if kind == gguf.GGMLQuantizationType.F16 else np.float32)
            writer.add_tensor_info(t.name, shape, np_dtype, int(np.prod(shape)) * np_dtype.itemsize)
        plan.append((t, kind, shape))
    missing = set(by_name) - {t.name for t in reader.tensors}
    if missing:
        raise UserError(f"the adapter changes {sorted(missing)[0]}, which {base_path.name} does not have; it was trained "
                        "on another model.")

    def fill(f):
        attach(writer, f)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, (t, kind, shape) in enumerate(plan):
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).reshape(shape)
            d = by_name.get(t.name)
            if d is not None:
                data = data + np.float32(d.scale) * (d.b @ d.a)
            if kind == gguf.GGMLQuantizationType.Q8_0:
                data = gguf.quants.quantize(data, kind)
            else:
                data = data.astype(np.float16 if kind == gguf.GGMLQuantizationType.F16 else np.float32)
            writer.write_tensor_data(np.ascontiguousarray(data))
            report("writing tensors", (i + 1) / len(plan))

    return write_gguf(out, fill)


def how_to_load_gguf(out: Path, base: Path | None = None, system_prompt: str = "") -> str:
    """What to type to use an exported GGUF in Ollama, llama.cpp and LM Studio: ``base`` set means ``out`` is a
    LoRA for that base file."""
    modelfile = [f"FROM {base or out}"] + ([f"ADAPTER {out}"] if base else [])
    if system_prompt:
        modelfile.append(f'SYSTEM """{system_prompt}"""')
    model = f"-m {base} --lora {out}" if base else f"-m {out}"
    return "\n".join([
        "Ollama:     a file named Modelfile holding",
        *(f"                {line}" for line in modelfile),
        "            then: ollama create my-tuned -f Modelfile && ollama run my-tuned",
        f"llama.cpp:  llama-cli {model} -cnv",
        f"            llama-server {model} --port 8080",
        ("LM Studio:  loads no separate LoRA file; export the merged model (--format gguf) and `lms import` it."
         if base else f"LM Studio:  lms import {out}   (then pick it in the model list)"),
    ])
