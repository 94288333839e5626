"""RL against the person's own reward model: the parts RLOO and GRPO share (engine/train/rloo.py, grpo.py).

The policy is the run's LoRA (on top of the adapter in use, or fresh); TRL keeps a frozen copy of the starting
adapter as the KL reference ("ref"; the base model when the LoRA is fresh). Each step samples
``rl.samples_per_prompt`` replies to ``rl.prompts_per_step`` of the person's own prompts (frozen ``prompt`` rows),
scores them with the reward model the run recorded in its manifest (engine reward; it reads text with its own
tokenizer, so any backbone serves any policy), and moves the policy towards the replies that scored above their
siblings. The training reward is not trusted for promotion: the gate checks the replies themselves
(engine.train.rl_gate). No torch at module level: imported inside the worker.
"""

from __future__ import annotations

from typing import Any, Callable

from engine.errors import UserError
from engine.settings import RlSettings

Scorer = Any
"""engine.reward.score.RewardScorer: ``score_many([(prompt messages, reply text)]) -> [float]``."""


def reward_function(scorer: Scorer) -> Callable[..., list[float]]:
    """A TRL reward function (``prompts``, ``completions`` -> one float each) backed by the reward model."""

    def tuneloop_reward(prompts, completions, **_) -> list[float]:
        replies = [c if isinstance(c, str) else "".join(m.get("content") or "" for m in c) for c in completions]
        return [float(x) for x in scorer.score_many(list(zip(prompts, replies)))]

    tuneloop_reward.__name__ = f"reward_model_{getattr(scorer, 'run_id', 'custom')}"
    return tuneloop_reward


def fit_prompt(tokenizer, prompt: list[dict], budget: int) -> list[dict]:
    """``prompt`` with its oldest turns dropped (the system message and the last user turn kept) until the
    rendered prompt fits ``budget`` tokens; a last turn that alone is too long is kept as it is."""
    system = [m for m in prompt[:1] if m.get("role") == "system"]
    turns = prompt[len(system):]
    while len(turns) > 1:
        ids = tokenizer.apply_chat_template(system + turns, add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        if len(ids) <= budget:
            break
        turns = turns[1:]
        while len(turns) > 1 and turns[0].get("role") != "user":
            turns = turns[1:]
    return system + turns


def config_args(args: dict, settings, rl: RlSettings, use_cpu: bool) -> dict:
    """The common TrainingArguments (engine.train.trainer_args) turned into an RL config's arguments."""
    args = dict(args)
    args.pop("max_length", None)  # RL configs bound the reply instead (max_completion_length)
    if rl.use_vllm and use_cpu:
        raise UserError("rl.use_vllm needs a GPU (vLLM does not run on a CPU); set use_vllm = false in [rl].")
    args.update(
        per_device_train_batch_size=rl.prompts_per_step * rl.samples_per_prompt,
        num_generations=rl.samples_per_prompt,
        max_completion_length=rl.max_reply_tokens,
        temperature=rl.temperature,
        beta=rl.kl,
        num_train_epochs=1,
        shuffle_dataset=True,
        use_vllm=rl.use_vllm,
        log_completions=False,
    )
    if rl.use_vllm:
        args["vllm_mode"] = rl.vllm_mode
    return args


def build(trainer_cls, config_cls, model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list,
          reward: Callable | None = None, rl: RlSettings | None = None, use_cpu: bool = True, **config_extra):
    from datasets import Dataset

    if reward is None or rl is None:
        raise RuntimeError("an RL stage needs its reward function and [rl] settings")
    budget = max(16, settings.max_length - rl.max_reply_tokens)
    prompts = [{"prompt": fit_prompt(tokenizer, r["prompt"], budget)} for r in train_rows]
    config = config_cls(**config_args(args, settings, rl, use_cpu), **config_extra)
    trainer = trainer_cls(model=model, reward_funcs=[reward], args=config, train_dataset=Dataset.from_list(prompts),
                          processing_class=tokenizer, callbacks=callbacks)
    trainer.tuneloop_batching = f"{rl.samples_per_prompt} sampled replies per prompt, {rl.prompts_per_step} " \
                                "prompts per step"
    return trainer
