"""Load the base model and tokenizer for training, with the LoRA adapter to train on top.

Training continues the promoted adapter by default (loaded trainable), or starts a fresh LoRA from
``profile.lora``. The model path comes from the runtime's resolver when it exists (the demo model is
built on first use); device and dtype are left to the Trainer (it moves the model, and under
``accelerate launch`` each rank takes its own device).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import UserError
from engine.home import Home
from engine.profiles import Profile


def resolve_model_path(profile: Profile, home: Home) -> str:
    """What transformers should load the base from (the runtime's rule: the demo dir, a local path, or a
    hub id read from the cache when offline)."""
    from engine.runtime.loading import resolve_source

    return resolve_source(profile, home)[0]


def train_device(profile: Profile) -> str:
    """The device the profile asks for (engine.runtime's rules); ``cpu`` means ``use_cpu=True`` for the Trainer."""
    from engine.runtime.device import resolve_device

    return resolve_device(profile.model.device)


def train_dtype(profile: Profile, device: str):
    """The runtime's dtype for the device, except fp32 on mps (fp16 training there is unstable)."""
    import torch

    from engine.runtime.device import resolve_dtype

    if device == "mps" and profile.model.dtype == "auto":
        return torch.float32
    return resolve_dtype(profile.model.dtype, device)


def load_tokenizer(profile: Profile, path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, revision=profile.model.revision,
                                            trust_remote_code=profile.model.trust_remote_code)
    except OSError as exc:
        raise UserError(f"cannot load the tokenizer of {profile.model.id!r} ({_first_line(exc)}); check the "
                        "profile's model.id or download the model first.") from None
    if profile.model.chat_template:
        tok.chat_template = profile.model.chat_template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(profile: Profile, path: str, dtype):
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, revision=profile.model.revision, dtype=dtype,
                                                     use_safetensors=True,
                                                     trust_remote_code=profile.model.trust_remote_code)
    except OSError as exc:
        raise UserError(f"cannot load the base model {profile.model.id!r} ({_first_line(exc)}); check the "
                        "profile's model.id or download the model first.") from None
    model.config.use_cache = False
    return model


def check_adapter_base(profile: Profile, adapter_dir: Path) -> None:
    """Refuse an adapter trained on another base model (its weights would not fit or would mean nothing)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{cfg_path} is missing or corrupt; run `engine adapters use base` or train with "
                        "--from base.") from None
    base = cfg.get("base_model_name_or_path")
    if base and base != profile.model.id:
        raise UserError(f"the adapter in {adapter_dir} was trained on {base!r}, not on this profile's model "
                        f"{profile.model.id!r}; train with --from base or switch adapters.")


def lora_config(profile: Profile):
    from peft import LoraConfig

    lo = profile.lora
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=lo.target_modules,
                      task_type="CAUSAL_LM")


def attach_adapter(model, profile: Profile, parent: Path | None):
    """A PeftModel whose ``default`` adapter is trainable: the parent adapter's weights, or a fresh LoRA."""
    from peft import PeftModel, get_peft_model

    if parent is not None:
        check_adapter_base(profile, parent)
        return PeftModel.from_pretrained(model, str(parent), is_trainable=True)
    return get_peft_model(model, lora_config(profile))


def save_adapter(peft_model, profile: Profile, out_dir: Path) -> None:
    """Standard PEFT files (only the ``default`` adapter) naming the profile's model id as the base."""
    cfg = peft_model.peft_config["default"]
    cfg.base_model_name_or_path = profile.model.id
    cfg.revision = profile.model.revision
    peft_model.save_pretrained(str(out_dir), selected_adapters=["default"], safe_serialization=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
