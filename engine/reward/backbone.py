"""The network under the reward head: which checkpoint, its tokenizer, and the head itself.

A profile's ``[reward] backbone`` is None (use the profile's own chat model) or any local path /
cached hub id, causal LM or encoder (BERT family). Either way the reward model is
``AutoModelForSequenceClassification(num_labels=1)``, optionally wrapped in LoRA (task SEQ_CLS) with
the fresh score head trained in full and saved with the adapter (``modules_to_save``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.adapters import ADAPTER_CONFIG
from engine.errors import UserError, first_line
from engine.home import Home
from engine.profiles import DEMO_MODEL, Profile
from engine.quiet import quiet_loading


@dataclass(frozen=True)
class Backbone:
    """Where the reward model's weights come from."""

    source: str
    """What the profile names: ``builtin:demo``, a local path or a hub id (stored in the run)."""
    path: str
    """What ``from_pretrained`` loads (the demo resolves to home/models/demo)."""
    revision: str | None = None
    trust_remote_code: bool = False
    is_chat_model: bool = False
    """True when the backbone is the profile's own chat model (reward.backbone unset)."""

    def to_json(self) -> dict:
        return asdict(self)


def resolve_backbone(profile: Profile, home: Home) -> Backbone:
    """The backbone named by the profile's [reward] table, resolved to something loadable."""
    name = profile.reward.backbone
    is_chat = name is None
    source = profile.model.id if name is None else name
    revision = profile.model.revision if is_chat else None
    return _resolve(source, home, revision, profile.model.trust_remote_code if is_chat else False, is_chat)


def backbone_from_json(data: dict, home: Home) -> Backbone:
    """Re-resolve a backbone stored in a run (the demo path follows the current home)."""
    return _resolve(data["source"], home, data.get("revision"), bool(data.get("trust_remote_code")),
                    bool(data.get("is_chat_model")))


def _resolve(source: str, home: Home, revision, trust_remote_code: bool, is_chat: bool) -> Backbone:
    from engine.runtime.gguf import is_gguf_id

    if source == DEMO_MODEL:
        from engine.demo import ensure_demo_model

        path = str(ensure_demo_model(home))
    elif is_gguf_id(source):  # the runtime's rule: converted once into home/models, then a local folder
        from engine.runtime.gguf import ensure_converted

        path = str(ensure_converted(source, home))
    else:
        expanded = Path(source).expanduser()
        looks_like_path = source.startswith(("/", ".", "~")) or expanded.exists()
        if looks_like_path and not (expanded / "config.json").is_file():
            raise UserError(
                f"reward backbone {source!r} is not a model folder (no config.json there); "
                "set [reward] backbone in the profile to a folder saved with save_pretrained."
            )
        path = str(expanded.absolute()) if looks_like_path else source
    return Backbone(source=source, path=path, revision=revision, trust_remote_code=trust_remote_code,
                    is_chat_model=is_chat)


def load_tokenizer(backbone: Backbone):
    """The backbone's tokenizer, truncating from the left and with a pad token."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(backbone.path, revision=backbone.revision,
                                            trust_remote_code=backbone.trust_remote_code)
    except OSError as exc:
        raise UserError(
            f"cannot load the tokenizer of reward backbone {backbone.source!r} ({first_line(exc)}); "
            "point [reward] backbone at a local model folder or a model already in the HF cache."
        ) from None
    # Keep the end of the conversation: the replies being compared are what differs.
    tok.truncation_side = "left"
    tok.padding_side = "right"
    if tok.pad_token is None:
        fallback = tok.eos_token or tok.unk_token or tok.sep_token
        if fallback is None:
            raise UserError(f"reward backbone {backbone.source!r} has no pad, eos or unk token to pad with.")
        tok.pad_token = fallback
    return tok


def unwrapped(model):
    """The transformers model itself, also from under a PeftModel (whose own names start ``base_model.``)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_names(model) -> list[str]:
    """Names of the sequence-classification head modules (``score`` in LMs, ``classifier`` in BERT)."""
    from peft.utils.constants import SEQ_CLS_HEAD_NAMES

    tops = {name.split(".")[0] for name, _ in unwrapped(model).named_modules() if name}
    return [n for n in SEQ_CLS_HEAD_NAMES if n in tops]


def new_reward_model(backbone: Backbone, tokenizer, profile: Profile, seed: int):
    """A fresh reward model: backbone weights + a seeded scalar head (+ LoRA when [reward] lora)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)  # the head is freshly initialised: make it reproducible
    try:
        with quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                backbone.path, num_labels=1, revision=backbone.revision,
                trust_remote_code=backbone.trust_remote_code, use_safetensors=True, dtype=torch.float32,
            )
    except OSError as exc:
        raise UserError(
            f"cannot load reward backbone {backbone.source!r} ({first_line(exc)}); point [reward] backbone "
            "at a local model folder or a model already in the HF cache."
        ) from None
    except ValueError as exc:
        raise UserError(f"reward backbone {backbone.source!r} has no sequence-classification form: "
                        f"{first_line(exc)}.") from None
    model.config.pad_token_id = tokenizer.pad_token_id
    if model.config.get_text_config() is not model.config:
        model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    if not profile.reward.lora:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    from engine.train.model import check_target_modules, lora_where

    lora = profile.lora
    check_target_modules(model, lora.target_modules, lora_where(profile))
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, modules_to_save=head_names(model),
    )
    return get_peft_model(model, config)


def load_trained(model_dir: Path, backbone: Backbone, dtype=None):
    """Load a reward model saved by the recipe, for scoring only: a PEFT adapter over the backbone (merged
    into it), or a full model (in ``dtype``, default float32)."""
    import torch

    dtype = dtype or torch.float32
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.truncation_side = "left"
    tokenizer.padding_side = "right"
    if (model_dir / ADAPTER_CONFIG).is_file():
        from peft import PeftModel

        with quiet_loading():
            base = AutoModelForSequenceClassification.from_pretrained(
                backbone.path, num_labels=1, revision=backbone.revision,
                trust_remote_code=backbone.trust_remote_code, use_safetensors=True, dtype=dtype,
            )
            base.config.pad_token_id = tokenizer.pad_token_id
            model = merged(PeftModel.from_pretrained(base, model_dir))
    else:
        with quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype, use_safetensors=True)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def merged(model):
    """A PEFT reward model with its LoRA folded into the weights, for scoring: the same scores (to float
    rounding) about 15% sooner on a CPU (bench: 300 replies, all-MiniLM-L6-v2, 3.4-4.0 s vs 4.0-5.5 s), as
    the adapter's extra matrix products per layer are gone. Other models are returned as they are."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model


def write_backbone(run_dir: Path, backbone: Backbone) -> None:
    from engine.reward import BACKBONE_FILE
    from engine.safe_files import write_private

    write_private(run_dir / BACKBONE_FILE, json.dumps(backbone.to_json(), indent=2))


