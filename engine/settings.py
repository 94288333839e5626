"""Every profile setting, declared once: its type, its allowed range and what it does.

The tables of a profile file (``[model]``, ``[generation]``, ``[lora]``, ``[train]``, ``[reward]``) are
pydantic dataclasses: strict types (TOML gives real ints, floats, bools and strings; nothing is coerced
except an integer where a number is asked for), finite floats only, ranges from ``Field``, choices from
``Literal``, unknown keys refused. They are still plain frozen dataclasses to the rest of the code
(``dataclasses.asdict`` / ``replace`` / ``fields`` work, and ``replace`` validates again).

Command-line overrides (``engine finetune --learning-rate``, ``engine generate --max-new-tokens``...)
go through :func:`override`, so a flag obeys exactly the rule of the setting it overrides, and every
refusal is one sentence that names the file or flag and the allowed range (:func:`allowed`).
This module must not import torch or transformers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator
from pydantic.dataclasses import dataclass

from engine.errors import UserError
from engine.setting_rules import (  # noqa: F401 (override, check_value, flag_name: callers import them from here)
    NOT_BLANK,
    _failed_key,
    _shown,
    allowed,
    check_value,
    flag_name,
    override,
)

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


settings_table = dataclass(frozen=True, config=_STRICT)


def as_dict(settings: Any) -> dict[str, Any]:
    """A settings table as a plain dict (for manifests and reports)."""
    return dataclasses.asdict(settings)
"""A frozen, validated settings dataclass (one per profile table): ``@settings_table`` on the class."""


SEED_MAX = 2**32 - 1
"""numpy (used by ``transformers.set_seed``) takes seeds below 2**32."""
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"

Dtype = Literal["auto", "bf16", "fp16", "fp32", "bfloat16", "float16", "float32"]
Method = Literal["auto", "sft", "dpo", "kto", "rloo", "grpo"]


@settings_table
class ModelSettings:
    id: str = Field(pattern=NOT_BLANK)
    """Hub id (``Qwen/Qwen2.5-0.5B-Instruct``), a local folder, a ``*.gguf`` file, ``pkg:<package>/<file>.gguf``,
    or ``builtin:demo``."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin."""
    device: str = Field("auto", pattern=DEVICE_PATTERN, json_schema_extra={"allowed": "auto, cpu, cuda, cuda:N or mps"})
    """``auto`` (cuda, then mps, then cpu), ``cuda``, ``cuda:1``, ``mps`` or ``cpu``."""
    dtype: Dtype = "auto"
    """``auto`` (bf16 on GPUs that support it, fp16 on other GPUs, fp32 on cpu), ``bf16``, ``fp16``, ``fp32``."""
    trust_remote_code: bool = False
    """Run Python code shipped with the model. Off unless you trust the model's authors."""
    chat_template: str | None = None
    """A Jinja chat template that replaces the tokenizer's own."""
    fast_path: bool = False
    """Static KV cache + torch.compile for decoding on CUDA (slower first reply, faster after)."""
    backend: Literal["auto", "transformers", "llamacpp", "openai", "local"] = "auto"
    """Who runs the model (engine.runtime.backend): ``auto`` is ``llamacpp`` for a GGUF model when
    llama-cpp-python is installed, else ``transformers``; ``transformers`` runs it in this process with PyTorch
    (``local`` is its old name); ``llamacpp`` runs a GGUF file in this process with llama.cpp (fastest on a CPU;
    falls back to transformers, saying so, where llama-cpp-python is missing); ``openai`` chats through an
    OpenAI-compatible server (``engine serve``, vLLM, llama.cpp, Ollama) at ``base_url``, and ``id`` still names
    the weights it runs. Training always runs on transformers."""
    base_url: str | None = Field(None, pattern=r"^https?://\S+$", json_schema_extra={"allowed": "an http(s) URL"})
    """The server's API root with ``backend = "openai"``, e.g. ``http://127.0.0.1:8000/v1``."""
    remote_model: str | None = Field(None, pattern=NOT_BLANK)
    """The model name the server knows the base model by (default: ``id``); adapters are asked for by run id."""
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    json_schema_extra={"allowed": "an environment variable name"})
    """The environment variable holding the server's API key (the key itself never goes in a profile)."""
    server_loads_adapters: bool = False
    """With ``backend = "openai"`` on a vLLM server started with ``--enable-lora`` (and
    ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``): tuneloop loads each adapter it uses into the server through
    its LoRA API (``POST {base_url}/load_lora_adapter``, named by run id, the adapter folder as its path:
    the server must be able to read that folder), and ``engine finetune`` loads a newly promoted one at once."""


@settings_table
class SamplingSettings:
    """How one reply is decoded; ``engine.runtime.GenerationParams`` is this plus the methods generate uses."""

    # Descriptions are given as arguments here (not docstrings) so the subclasses keep them.
    max_new_tokens: int = Field(512, ge=1, le=1_000_000, description="Longest reply in tokens.")
    temperature: float = Field(0.7, ge=0, le=100, description="Sampling temperature; 0 decodes greedily.")
    top_p: float = Field(0.9, gt=0, le=1, description=(
        "Nucleus sampling: keep the most likely tokens up to this probability mass (1 keeps all)."))
    top_k: int = Field(0, ge=0, description="Keep only the k most likely tokens; 0 disables it.")
    repetition_penalty: float = Field(1.0, gt=0, le=100, description="Above 1 discourages repeating tokens; 1 is off.")
    do_sample: bool = Field(True, description="False means greedy decoding (temperature, top_p and top_k are then ignored).")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description=(
        "Fixed seed for sampling; None draws a fresh seed per reply (it is still recorded)."))


@settings_table
class GenerationSettings(SamplingSettings):
    best_of: int = Field(1, ge=1, le=64)
    """Sample this many replies and show the reward model's favourite first (needs a reward run)."""


@settings_table
class LoraSettings:
    r: int = Field(16, ge=1, le=4096)
    """LoRA rank: the size of the low-rank update."""
    alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the LoRA input during training."""
    target_modules: str | list[str] = Field("all-linear", json_schema_extra={
        "allowed": "'all-linear', a regular expression, or a non-empty list of module names"})
    """Which layers get LoRA: ``all-linear``, a regex matched against full module names, or a list of module
    names (``["q_proj", "v_proj"]``); names the model lacks are refused before training."""

    @field_validator("target_modules")
    @classmethod
    def _not_empty(cls, value):
        names = [value] if isinstance(value, str) else value
        if not names or not all(n.strip() for n in names):
            raise ValueError("empty")
        return value


@settings_table
class TrainSettings:
    method: Method = "auto"
    """``auto`` (decide from the data), ``sft``, ``dpo``, ``kto``, or RL against the profile's reward model:
    ``rloo`` or ``grpo`` (settings in ``[rl]``)."""
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    """Peak learning rate of the optimizer."""
    epochs: float = Field(3.0, gt=0, le=10_000)
    """Passes over the training rows."""
    max_steps: int = Field(-1, ge=-1, json_schema_extra={"allowed": "-1 (run all epochs) or an integer >= 1"})
    """Stop after this many optimizer steps (-1: run ``epochs``)."""
    batch_size: int = Field(4, ge=1, le=65_536)
    """Rows per device per step."""
    grad_accum: int = Field(1, ge=1, le=65_536)
    """Steps whose gradients are added up before each optimizer update."""
    max_length: int = Field(1024, ge=16, le=1_048_576)
    """Tokens per row; longer rows are cut."""
    beta: float = Field(0.1, gt=0, le=100)
    """DPO/KTO temperature."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less GPU memory, slower."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """QLoRA: load the frozen base model in 4-bit NF4 (or 8-bit) with bitsandbytes while the LoRA trains in the
    model's dtype; CUDA only (``pip install bitsandbytes``). A 7B-8B model's weights then take about 5 GB
    instead of 15-16 GB in bf16 (docs/ARCHITECTURE.md, "Large models")."""
    padding_free: bool = True
    """Pack rows without padding where TRL supports it (faster on mixed lengths)."""
    save_steps: int = Field(50, ge=1)
    """Checkpoint every N optimizer steps."""
    save_minutes: float = Field(30.0, ge=0, le=1_000_000)
    """Also checkpoint every M minutes (0: only by steps)."""
    eval_fraction: float = Field(0.1, ge=0, lt=1)
    """Share of conversations held out for the promotion gate."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seed for the split, the LoRA init and the data order."""
    gate_margin: float = Field(0.0, ge=-100, le=100)
    """Promote only if the new adapter's per-token log-prob and loss metrics (liked_logprob, dpo_loss; nats)
    are not worse than the current one's by more than this (negative: must be better by that much)."""
    gate_accuracy_margin: float = Field(0.0, ge=-1, le=1)
    """Promote only if the new adapter's accuracies on held-out feedback (pref_accuracy, kto_accuracy; a share
    from 0 to 1) are not lower than the current one's by more than this."""
    gate_kept_margin: float | None = Field(None, ge=0, le=100)
    """Nothing else breaks: refuse an adapter whose mean per-token log-prob of the starting model's own
    replies to held-out ordinary prompts (``kept_logprob``: prompts like the feedback's that no rehearsal
    row trains, engine.train.rehearsal) is lower than the current adapter's by more than this (nats). None:
    measured and reported in gate.json, not a check. Needs ``rehearsal`` > 0 (that is where the replies come from)."""
    gate_regression_prompts: int = Field(192, ge=0, le=1000)
    """Nothing else breaks: before training, the adapter in use answers this many ordinary questions with a
    checkable answer (half the ones most like the feedback's, half general; engine/train/regression.py); the gate
    refuses a new adapter that answers too many of those it got right wrongly (``gate_max_changed``) or
    collapsed to empty replies. Applies to every method. 0 turns the check off. 192 (of 235): with 96 the counts of a
    run that kept every bench control and one that broke some overlapped (6-8 of 54 against 7-8 of 57); on 68 more
    prompts the same two adapters changed 5 and 15 (bench/LEARNING_NOTES.md)."""
    gate_max_changed: float = Field(0.13, ge=0, le=1)
    """The share of the regression questions the adapter in use answers correctly that a new adapter may answer
    wrongly and still be promoted (at least one is always allowed: greedy replies of a slightly different model
    flip a borderline answer now and then). Calibrated on SmolLM2 runs (bench/LEARNING_NOTES.md): runs that broke 3
    or more of the bench's 30 controls changed 9-19 of 54-57 known answers, the two that kept 29 and 30 changed 3
    and 6; 0.13 allows 7 of 54 (15 of 120)."""
    min_rows: int = Field(4, ge=1)
    """Refuse to train on fewer rows than this."""
    gate_uses_reward: bool = False
    """Also require a reward-model win rate of at least 50% when a reward model exists."""
    rehearsal: float = Field(0.0, ge=0, le=16)
    """Rehearsal rows per SFT row: the starting model's own greedy replies to ordinary prompts, trained
    beside the feedback so that what it already answered well stays as it was (engine/train/rehearsal.py).
    0 turns it off."""
    rehearsal_distill: bool = False
    """Train the rehearsal rows toward the starting model's top-20 next-token probabilities at every position of
    its reply (distillation, engine/train/distill.py) instead of only its greedy text: pins down more of what the
    model did before. Needs ``rehearsal`` > 0."""
    anchor_weight: float = Field(0.0, ge=0, le=100)
    """DPO, KTO and RL stages also train the rehearsal rows toward the starting model's top-20 next-token
    probabilities (the distillation SFT's rehearsal uses, engine/train/distill.py ``anchor``), weighted by this
    against the stage's own loss: what a preference pushes down everywhere (the model's own way of answering) is
    held where nobody judged it. Rehearsal rows are then made for a plan without SFT too (``rehearsal`` per
    trained row). 0 turns it off."""
    stop_when_learned: float | None = Field(None, gt=0, le=1)
    """Stop an SFT stage at the end of an epoch once this share of the feedback rows is learned: the model's most
    likely next token is the reply's own at every position of the row (its greedy answer to that conversation is
    the taught reply; engine/train/early_stop.py). The epochs after that carry the taught answers into look-alike
    questions. None: train every epoch."""
    preference_stop_loss: float | None = Field(0.3, gt=0, le=1)
    """Stop a DPO or KTO stage once the mean preference loss of its own train rows (scored every quarter epoch
    against the adapter the stage started from; engine/train/early_stop.py) is at most this: 0.3 is every pair
    ranked right by about 1 nat x beta. Measured on SmolLM2 (bench/LEARNING_NOTES.md): DPO learns the style pairs by
    step 2-6 of 45 and the steps after that only move answers nobody taught; on critique revisions a stop at 0.05
    changed 18 of 57 known answers and one at 0.3 changed 8 (held-out replies short: 100% and 90%). None: train
    every epoch."""
    refit: Literal["cold", "warm"] = "cold"
    """How a gated candidate learns the held-out rows before it is published. ``cold``: the whole recipe again, from
    the adapter the run started from, on every row (a second full training). ``warm``: each SFT stage continues
    from the candidate on every row until ``stop_when_learned`` holds, or 0.9 of the rows are reproduced where that
    is None (often one epoch); a plan with other stages refits cold. The refit is checked for regressions either
    way."""
    preference_learning_rate: float | None = Field(None, gt=0, lt=1)
    """Learning rate of the DPO and KTO stages (None: ``learning_rate``). Preference losses push whole replies
    up or down and need a smaller step than SFT."""
    question_variants: int = Field(0, ge=0, le=4)
    """Per SFT row that answers one question about a named thing in a short reply (a corrected fact): train
    the reply also after this many fixed questions about the name ("Tell me about Veltoria.", ...), so it
    carries to other wordings of the question (engine/train/variants.py; English questions). 0 turns it off."""
    neftune_noise_alpha: float = Field(0.0, ge=0, le=100)
    """NEFTune: uniform noise on the input embeddings of the SFT stages, scaled by alpha / sqrt(tokens x
    width) per batch (transformers' Trainer). 0 turns it off. With padding-free batches the tokens are the
    whole packed batch, so the same alpha adds less noise per row than with padded batches."""

    @field_validator("max_steps")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("zero steps")
        return value


@settings_table
class RewardSettings:
    backbone: str | None = Field(None, pattern=NOT_BLANK)
    """Model for the reward head: None means the profile's own model; else a hub id or local path."""
    lora: bool = True
    """Train a LoRA adapter plus the score head (false: train the whole model)."""
    learning_rate: float = Field(5e-4, gt=0, lt=1)
    """Learning rate of the optimizer (the new score head learns 10x faster: engine.reward.train.HEAD_LR_RATIO).
    A rate for LoRA: with ``lora = false`` (the whole model) set a far lower one (TRL's recipe: 3e-5).
    Measured with all-MiniLM-L6-v2 (bench/reward_speed.py, held-out accuracy): 1e-4 0.843, 5e-4 0.865 and 0.889
    (0.882 with the head at 10x, TRL's full fine-tune 0.841); 1e-3 fell apart (0.64: every reply scored alike)."""
    epochs: float | None = Field(None, gt=0, le=10_000)
    """Passes over the training pairs. None: 3 for up to about 330 pairs, fewer for more pairs so that about
    1,000 pairs are seen, at least 1 (engine.reward.train.auto_epochs)."""
    batch_size: int = Field(8, ge=1, le=65_536)
    """Pairs per device per step."""
    max_length: int = Field(512, ge=16, le=1_048_576)
    """Tokens per prompt + reply; longer ones are cut from the left."""
    eval_fraction: float = Field(0.2, ge=0, lt=1)
    """Share of conversations held out to measure the reward model."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seed for the head init, the split and the data order."""
    non_answer_share: float = Field(0.5, ge=0, le=1)
    """Share of the training pairs whose chosen reply (if at least 6 words) is also trained against a short
    non-answer ("OK.", "I don't know."; engine/reward/non_answers.py). The person's pairs never say that an answer
    beats no answer: trained on short-and-right over long-and-padded, a reward model paid most for one word and
    RL collapsed into "Awful.". The held-out check (``over_non_answer`` in the report) uses non-answers the
    training never saw. 0: the person's pairs only."""


@settings_table
class RlSettings:
    """RL against the person's own reward model (``engine finetune --method rloo|grpo``; engine/train/rl.py)."""

    samples_per_prompt: int = Field(4, ge=2, le=256)
    """Replies sampled per prompt; each is judged against the others (the leave-one-out / group baseline)."""
    prompts_per_step: int = Field(2, ge=1, le=65_536)
    """Prompts per optimizer step (each with ``samples_per_prompt`` replies)."""
    steps: int = Field(100, ge=1, le=10_000_000)
    """Optimizer steps of an RL stage (``--max-steps`` overrides it)."""
    learning_rate: float = Field(5e-5, gt=0, lt=1)
    """Learning rate of the RL stage (``--learning-rate`` overrides it)."""
    kl: float = Field(0.05, ge=0, le=100)
    """Weight of the KL term that keeps the policy near the reference (the adapter in use, or the base)."""
    stop_kl: float | None = Field(0.5, gt=0, le=1000)
    """Stop the RL stage once the KL to the reference of the replies it sampled at a step (nats per token, as
    TRL logs it) passes this, keeping the weights of the last step under it (engine/train/kl_stop.py): reward
    hacking shows as KL rising within a few steps (SmolLM2: 0 to 1.6 in the last 8 of 24 steps, one-word replies;
    a run that learned the preference stayed at 0.125). None: train every step."""
    max_reply_tokens: int = Field(128, ge=1, le=1_000_000)
    """Longest sampled reply during training, in tokens."""
    temperature: float = Field(1.0, gt=0, le=100)
    """Sampling temperature of the training replies."""
    auto: bool = False
    """Let ``--method auto`` add an RL stage when the reward model is good enough (``min_reward_accuracy``) and
    there are ``min_prompts`` prompts. Off by default: RL samples many replies per step and is slow on a CPU."""
    min_reward_accuracy: float = Field(0.7, ge=0, le=1)
    """Held-out pairwise accuracy the reward model needs before ``auto`` trusts it for RL."""
    min_prompts: int = Field(16, ge=1)
    """Prompts (user turns with their context) ``auto`` needs before it chooses RL."""
    gate_max_length_ratio: float = Field(1.5, gt=0, le=1000)
    """The gate refuses an RL adapter whose held-out replies are on average more than this many times as long
    as the reference's (a reward model that pays for length is the commonest hack)."""
    gate_max_repetition_increase: float = Field(0.1, ge=0, le=1)
    """The gate refuses an RL adapter whose share of repeated 4-grams in its replies exceeds the reference's by
    more than this."""
    gate_max_kl: float = Field(1.0, ge=0, le=1000)
    """The gate refuses an RL adapter whose replies' mean KL to the reference exceeds this (nats per token)."""
    use_vllm: bool = False
    """GPU only: sample training replies with vLLM (``pip install vllm``; not available or tested on CPU)."""
    vllm_mode: Literal["colocate", "server"] = "colocate"
    """``colocate`` runs vLLM inside the training process; ``server`` talks to ``trl vllm-serve``."""


TABLES: dict[str, type] = {
    "model": ModelSettings,
    "generation": GenerationSettings,
    "lora": LoraSettings,
    "train": TrainSettings,
    "reward": RewardSettings,
    "rl": RlSettings,
}
DEFAULT_REVISION_PROMPT = (
    "Here is feedback on your last reply:\n\n{critique}\n\n"
    "Write your last reply again so that it follows this feedback. Give only the new reply, without any "
    "preamble or remark about the feedback."
)
"""The default ``revision_prompt``: ``{critique}`` is replaced by what the person wrote."""

TOP_LEVEL: dict[str, str] = {
    "system_prompt": "The system prompt sent before every conversation.",
    "description": "One line shown in profile lists.",
    "revision_prompt": (
        "Language feedback: the user turn that asks the model to revise its reply after a critique (the "
        "conversation and the original reply come before it); ``{critique}`` is replaced by the critique."
    ),
}

# ------------------------------------------------------------------------------------ building a table


def build_table(table: str, values: Any, where: str):
    """The settings of ``[table]`` from a TOML table; a bad key or value is one UserError sentence that
    starts with ``where`` (the file) and names the key and what it accepts."""
    cls = TABLES[table]
    if not isinstance(values, dict):
        raise UserError(f"{where}: key '{table}' must be a table ([{table}]), not {type(values).__name__}.")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            raise UserError(f"{where}: unknown key '{table}.{key}' (known keys in [{table}]: {', '.join(sorted(known))}).")
    try:
        return cls(**values)
    except ValidationError as exc:
        key = _failed_key(exc)
        if key is None:
            raise UserError(f"{where}: [{table}] is not valid ({exc.errors()[0]['msg']}).") from None
        if key not in values:
            raise UserError(f"{where}: missing key '{table}.{key}' (it must be {allowed(cls, key)}).") from None
        raise UserError(f"{where}: key '{table}.{key}' must be {allowed(cls, key)}, not {_shown(values[key])}.") from None
