"""Load the base model and tokenizer for training, with the LoRA adapter to train on top.

Training continues the promoted adapter by default (loaded trainable), or starts a fresh LoRA from
``profile.lora``. The model path comes from the runtime's resolver when it exists (the demo model is
built on first use); device and dtype are left to the Trainer (it moves the model, and under
``accelerate launch`` each rank takes its own device).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import UserError, first_line
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
        raise UserError(f"cannot load the tokenizer of {profile.model.id!r} ({first_line(exc)}); check the "
                        "profile's model.id or download the model first.") from None
    if profile.model.chat_template:
        tok.chat_template = profile.model.chat_template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_base(profile: Profile, path: str, dtype):
    """The frozen base model for training or evaluation: in ``dtype``, or quantized (``train.quantize``, QLoRA)
    and already on its GPU. Move it with :func:`to_device` (a quantized model refuses ``.to``)."""
    from transformers import AutoModelForCausalLM

    extra = quantization(profile, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, revision=profile.model.revision, dtype=dtype,
                                                     use_safetensors=True,
                                                     trust_remote_code=profile.model.trust_remote_code, **extra)
    except OSError as exc:
        raise UserError(f"cannot load the base model {profile.model.id!r} ({first_line(exc)}); check the "
                        "profile's model.id or download the model first.") from None
    model.config.use_cache = False
    if extra:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=profile.train.gradient_checkpointing)
    return model


def quantization(profile: Profile, dtype) -> dict:
    """``from_pretrained`` arguments for ``train.quantize`` (empty for ``none``); one sentence when the device or
    the bitsandbytes package cannot do it."""
    import importlib.util

    mode = profile.train.quantize
    if mode == "none":
        return {}
    device = train_device(profile)
    where = f"{profile.path}: key 'train.quantize'" if profile.path else "train.quantize"
    if not device.startswith("cuda"):
        raise UserError(f"{where} = {mode!r} needs a CUDA GPU (bitsandbytes quantizes on the GPU) and this profile "
                        f"trains on {device}; set quantize = \"none\".")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"{where} = {mode!r} needs the bitsandbytes package: pip install bitsandbytes.")
    from transformers import BitsAndBytesConfig

    index = int(device.split(":")[1]) if ":" in device else 0
    if mode == "4bit":
        config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                    bnb_4bit_compute_dtype=dtype)
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": config, "device_map": {"": index}}


def to_device(model, device: str):
    """``model.to(device)``, except for a quantized model, which was placed when it was loaded."""
    if getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None:
        return model
    return model.to(device)


def check_target_modules(model, names: str | list[str], where: str = "lora.target_modules") -> None:
    """Refuse LoRA target names the model lacks, in one sentence listing the linear layers it has (peft
    would fail with a traceback when none match, or skip the missing ones silently)."""
    import re

    if names == "all-linear":
        return
    modules = [n for n, _ in model.named_modules() if n]
    if isinstance(names, str):  # peft: a string other than all-linear is a regex over full module names
        try:
            found = any(re.fullmatch(names, n) for n in modules)
        except re.error as exc:
            raise UserError(f"{where} {names!r} is not a valid regular expression ({exc}).") from None
        missing = [] if found else [names]
    else:
        missing = [t for t in names if not any(n == t or n.endswith("." + t) for n in modules)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if n and type(m).__name__ in ("Linear", "Conv1D")})
        shown = ", ".join(linear[:12]) + (", ..." if len(linear) > 12 else "")
        raise UserError(f"{where} names {', '.join(repr(m) for m in missing)}, which the model does not have "
                        f"(its linear layers: {shown or 'none'}); use one of those or 'all-linear'.")


def check_target_modules_early(names: str | list[str], path: str, where: str, revision: str | None = None,
                               trust_remote_code: bool = False, auto_class: str = "AutoModelForCausalLM") -> None:
    """check_target_modules on an empty (meta-device) model built from the config at ``path`` alone: no
    weights are read, so it can run before a run directory exists. Skipped when the config cannot be
    built that way (the check when the real model is loaded still runs)."""
    if names == "all-linear":
        return
    try:
        import torch
        import transformers

        config = transformers.AutoConfig.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = getattr(transformers, auto_class).from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 (an early check only; loading reports real problems itself)
        return
    check_target_modules(model, names, where)


def lora_config(profile: Profile):
    from peft import LoraConfig

    lo = profile.lora
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=lo.target_modules,
                      task_type="CAUSAL_LM")


def attach_adapter(model, profile: Profile, parent: Path | None):
    """A PeftModel whose ``default`` adapter is trainable: the parent adapter's weights, or a fresh LoRA."""
    from peft import PeftModel, get_peft_model

    if parent is not None:  # checked against the profile's base before the run began (finetune._parent_adapter)
        return PeftModel.from_pretrained(model, str(parent), is_trainable=True)
    check_target_modules(model, profile.lora.target_modules, lora_where(profile))
    return get_peft_model(model, lora_config(profile))


def lora_where(profile: Profile) -> str:
    """How an error about [lora] target_modules names it: the profile file and the key."""
    return f"{profile.path}: key 'lora.target_modules'" if profile.path else "lora.target_modules"


def save_adapter(peft_model, profile: Profile, out_dir: Path) -> None:
    """Standard PEFT files (only the ``default`` adapter) naming the profile's model id as the base."""
    cfg = peft_model.peft_config["default"]
    cfg.base_model_name_or_path = profile.model.id
    cfg.revision = profile.model.revision
    peft_model.save_pretrained(str(out_dir), selected_adapters=["default"], safe_serialization=True)




def local_model(profile, home, adapter: str | None):
    """The profile's model loaded in this process (with ``adapter``: a run id, ``base`` or None), also for a profile
    that chats through a server: training has the weights here, and the candidate is on no server yet."""
    import dataclasses

    from engine.runtime import load_model

    if profile.model.backend != "local":
        profile = profile.replace(model=dataclasses.replace(profile.model, backend="local"))
    return load_model(profile, home, adapter=adapter)


def load_pair(profile: Profile, home: Home, new_adapter, current_adapter=None, use_cache: bool = False):
    """``(peft_model, tokenizer, has_current)``: the base model on the training device with the adapter at
    ``new_adapter`` as ``"new"`` and, when ``current_adapter`` (a path) holds an adapter, that one as
    ``"current"`` (``has_current`` False: the comparison is with the base model). The gate, the RL gate and
    ``engine evaluate`` compare two adapters this way; this is the one place that loads them."""
    from peft import PeftModel

    from engine.adapters import ADAPTER_CONFIG
    from engine.quiet import quiet_loading

    device = train_device(profile)
    path = resolve_model_path(profile, home)
    with quiet_loading():
        tokenizer = load_tokenizer(profile, path)
        base = to_device(load_base(profile, path, train_dtype(profile, device)), device)
        if use_cache:
            base.config.use_cache = True
        peft_model = PeftModel.from_pretrained(base, str(new_adapter), adapter_name="new")
        has_current = current_adapter is not None and (Path(current_adapter) / ADAPTER_CONFIG).is_file()
        if has_current:
            peft_model.load_adapter(str(current_adapter), adapter_name="current")
        to_device(peft_model, device)
    return peft_model, tokenizer, has_current
