"""KTO recipe: unpaired liked / disliked replies, weighted so both sides count equally.

TRL suggests ``desirable_weight * n_desirable / (undesirable_weight * n_undesirable)`` in [1, 4/3];
we up-weight the rarer side to make that ratio exactly 1.
"""

from __future__ import annotations


def class_weights(train_rows: list[dict]) -> tuple[float, float]:
    n_good = sum(1 for r in train_rows if r.get("label"))
    n_bad = len(train_rows) - n_good
    if n_good == 0 or n_bad == 0:
        return 1.0, 1.0
    if n_good >= n_bad:
        return 1.0, n_good / n_bad
    return n_bad / n_good, 1.0


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    desirable, undesirable = class_weights(train_rows)
    config = KTOConfig(**args, beta=settings.beta, desirable_weight=desirable, undesirable_weight=undesirable)
    return KTOTrainer(model=model, args=config, train_dataset=Dataset.from_list(train_rows),
                      processing_class=tokenizer, callbacks=callbacks)
