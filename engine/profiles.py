"""Model profiles: one TOML file per model, built-in (``profiles/``) or the user's (``home/profiles/``).

A profile says which model to load and how, how to generate, and how to train. Loading validates
every key and type; a bad file raises a UserError whose one sentence names the file and the key.
This module must not import torch or transformers.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.home import Home, check_name

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "profiles"
DEMO_MODEL = "builtin:demo"  # model id of the offline demo model, built on first use in home/models/demo


@dataclass(frozen=True)
class ModelSettings:
    id: str
    """Hub id (``Qwen/Qwen2.5-0.5B-Instruct``), a local path, or ``builtin:demo``."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin."""
    device: str = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cuda``, ``cuda:1``, ``mps`` or ``cpu``."""
    dtype: str = "auto"
    """``auto`` (bf16 on GPUs that support it, fp16 on other GPUs, fp32 on cpu), ``bf16``, ``fp16``, ``fp32``."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust the model's authors."""
    chat_template: str | None = None
    """A Jinja chat template that replaces the tokenizer's own."""
    fast_path: bool = False
    """Static KV cache + torch.compile for decoding on CUDA (slower first reply, faster after)."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    repetition_penalty: float = 1.0
    do_sample: bool = True
    """False means greedy decoding."""
    seed: int | None = None
    """Fixed seed for sampling; None draws a fresh seed per reply (it is still recorded)."""
    best_of: int = 1
    """Sample this many replies and show the reward model's favourite first (needs a reward run)."""


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"


@dataclass(frozen=True)
class TrainSettings:
    method: str = "auto"
    """``auto``, ``sft``, ``dpo`` or ``kto``."""
    learning_rate: float = 2e-4
    epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run ``epochs``)."""
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    beta: float = 0.1
    """DPO/KTO temperature."""
    gradient_checkpointing: bool = False
    padding_free: bool = True
    """Pack rows without padding where TRL supports it (faster on mixed lengths)."""
    save_steps: int = 50
    save_minutes: float = 30.0
    eval_fraction: float = 0.1
    """Share of conversations held out for the promotion gate."""
    seed: int = 0
    gate_margin: float = 0.0
    """Promote only if the new adapter is not worse than the current one by more than this."""
    min_rows: int = 4
    gate_uses_reward: bool = False
    """Also require a reward-model win rate of at least 50% when a reward model exists."""


@dataclass(frozen=True)
class RewardSettings:
    backbone: str | None = None
    """Model for the reward head: None means the profile's own model; else a hub id or local path."""
    lora: bool = True
    learning_rate: float = 1e-4
    epochs: float = 3.0
    batch_size: int = 8
    max_length: int = 512
    eval_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class Profile:
    name: str
    model: ModelSettings
    system_prompt: str = "You are a helpful assistant."
    description: str = ""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    path: Path | None = None
    """The file it was read from."""
    source: str = "builtin"
    """``builtin`` or ``user``."""

    @property
    def is_demo(self) -> bool:
        return self.model.id == DEMO_MODEL

    def replace(self, **changes) -> "Profile":
        return dataclasses.replace(self, **changes)


_TABLES = {
    "model": ModelSettings,
    "generation": GenerationSettings,
    "lora": LoraSettings,
    "train": TrainSettings,
    "reward": RewardSettings,
}
_TOP_LEVEL = {"system_prompt": str, "description": str}

_CHOICES = {
    ("model", "device"): None,  # free-form but checked below
    ("model", "dtype"): {"auto", "bf16", "fp16", "fp32", "bfloat16", "float16", "float32"},
    ("train", "method"): {"auto", "sft", "dpo", "kto"},
}


def _type_ok(value, annotation) -> bool:
    hint = annotation
    if isinstance(hint, str):
        hint = eval(hint, {"list": list, "str": str, "int": int, "float": float, "bool": bool, "None": None})
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is None or hint is type(None):
        return value is None
    if origin is list:
        (inner,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(annotation) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _build(cls, table: dict, file: Path, prefix: str):
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        dotted = f"{prefix}.{key}"
        if key not in hints:
            known = ", ".join(sorted(hints))
            raise UserError(f"{file}: unknown key '{dotted}' (known keys in [{prefix}]: {known}).")
        if not _type_ok(value, hints[key]):
            raise UserError(
                f"{file}: key '{dotted}' must be {_type_name(hints[key])}, not {type(value).__name__} {value!r}."
            )
        allowed = _CHOICES.get((prefix, key))
        if allowed and value not in allowed:
            raise UserError(f"{file}: key '{dotted}' must be one of {', '.join(sorted(allowed))}, not {value!r}.")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        raise UserError(f"{file}: missing key '{prefix}.{missing[0] if missing else '?'}'.") from None


def parse_profile(name: str, text: str, path: Path, source: str = "user") -> Profile:
    """Validate TOML ``text`` into a Profile; every problem is one sentence naming ``path`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: TOML syntax error: {exc}.") from None
    kwargs: dict = {}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise UserError(f"{path}: key '{key}' must be a table ([{key}]), not {type(value).__name__}.")
            kwargs[key] = _build(_TABLES[key], value, path, key)
        elif key in _TOP_LEVEL:
            if not isinstance(value, _TOP_LEVEL[key]):
                raise UserError(f"{path}: key '{key}' must be a string, not {type(value).__name__}.")
            kwargs[key] = value
        else:
            known = ", ".join(sorted([*_TABLES, *_TOP_LEVEL]))
            raise UserError(f"{path}: unknown key '{key}' (known: {known}).")
    if "model" not in kwargs:
        raise UserError(f"{path}: missing key 'model.id' (add a [model] table with id = \"...\").")
    model: ModelSettings = kwargs["model"]
    if not model.id.strip():
        raise UserError(f"{path}: key 'model.id' is empty.")
    dev = model.device
    if not (dev in {"auto", "cpu", "cuda", "mps"} or dev.startswith("cuda:")):
        raise UserError(f"{path}: key 'model.device' must be auto, cpu, cuda, cuda:N or mps, not {dev!r}.")
    return Profile(name=name, path=path, source=source, **kwargs)


def _candidates(home: Home | None) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    for folder, source in ((BUILTIN_DIR, "builtin"), (home.profiles_dir if home else None, "user")):
        if folder is None or not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = (path, source)  # user profiles override built-ins of the same name
    return found


def profile_names(home: Home | None = None) -> list[str]:
    return sorted(_candidates(home))


def load_profile(name: str, home: Home | None = None) -> Profile:
    """Load profile ``name`` (user profile first, then built-in)."""
    check_name(name, "profile name")
    found = _candidates(home)
    if name not in found:
        names = ", ".join(sorted(found)) or "none"
        raise UserError(f"no profile named {name!r} (available: {names}); add {name}.toml to the profiles folder.")
    path, source = found[name]
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None  # dangling or looping link: reading it below reports that
    if real is not None and real.parent != path.parent.resolve():
        raise UserError(f"{path} links to {real}, outside its profiles folder; copy the file there instead.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text.") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror}).") from None
    return parse_profile(name, text, path, source)


def list_profiles(home: Home | None = None) -> list[Profile | UserError]:
    """Every profile, or the error that stops it loading, in name order."""
    out: list[Profile | UserError] = []
    for name in profile_names(home):
        try:
            out.append(load_profile(name, home))
        except UserError as exc:
            out.append(exc)
    return out


def default_profile_name(home: Home | None) -> str:
    """The ``default_profile`` from home/config.toml, else ``demo``."""
    if home and home.config_path.is_file():
        try:
            data = tomllib.loads(home.config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{home.config_path}: cannot be read: {exc}.") from None
        name = data.get("default_profile")
        if isinstance(name, str) and name:
            return name
    return "demo"
