"""DPO recipe: preference pairs (edit over original, pick over the others, liked over disliked sibling).

The model arrives as a PeftModel; TRL then keeps a frozen copy of the starting adapter as the
reference (the base when the adapter is fresh), so continued training stays close to what was promoted.
"""

from __future__ import annotations


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**args, beta=settings.beta)
    return DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(train_rows),
                      processing_class=tokenizer, callbacks=callbacks)
