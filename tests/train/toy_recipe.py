"""A toy training method for tests/train/test_toy_method.py: SFT for two steps at a tenth of the rate. It exists
only to show that a method is one module plus one registry row (engine/train/methods.py)."""

from __future__ import annotations


def build(model, tokenizer, rows, settings, args, callbacks):
    from engine.train import sft

    return sft.build(model, tokenizer, rows, settings, {**args, "max_steps": 2,
                                                        "learning_rate": args["learning_rate"] / 10}, callbacks)
