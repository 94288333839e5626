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
        from engine.runs import as_disk_error

        full = as_disk_error(exc, out.parent)
        if full is not None:
            raise full from None
        if isinstance(exc, OSError):
            raise UserError(f"cannot write the exported model to {out} ({exc.strerror or exc}).") from None
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
