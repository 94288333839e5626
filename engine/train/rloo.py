"""RLOO recipe (REINFORCE with a leave-one-out baseline): each reply's advantage is its reward minus the mean
of its siblings' (engine/train/rl.py has the shared parts)."""

from __future__ import annotations


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list, **rl_inputs):
    from trl import RLOOConfig, RLOOTrainer

    from engine.train import rl

    return rl.build(RLOOTrainer, RLOOConfig, model, tokenizer, train_rows, settings, args, callbacks, **rl_inputs)
