"""GRPO recipe: advantages are rewards normalised within each prompt's group of replies, with a clipped
policy ratio (engine/train/rl.py has the shared parts)."""

from __future__ import annotations


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list, **rl_inputs):
    from trl import GRPOConfig, GRPOTrainer

    from engine.train import rl

    return rl.build(GRPOTrainer, GRPOConfig, model, tokenizer, train_rows, settings, args, callbacks, **rl_inputs)
