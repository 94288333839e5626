"""SFT recipe: liked and edited replies, loss on the assistant's tokens only.

``assistant_only_loss`` needs ``{% generation %}`` markers in the chat template (the demo template has
them); padding-free batches only where TRL supports them (FlashAttention), else ordinary padding.
"""

from __future__ import annotations


def padding_free_choice(model, wanted: bool) -> tuple[bool, str]:
    impl = getattr(model.config, "_attn_implementation", None) or ""
    if not wanted:
        return False, "padding_free off in the profile"
    if "flash" in impl:
        return True, f"padding-free batches ({impl})"
    return False, f"padding-free needs FlashAttention; model uses {impl or 'eager'}, so batches are padded"


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    padding_free, _why = padding_free_choice(model, settings.padding_free)
    config = SFTConfig(**args, assistant_only_loss=True, padding_free=padding_free, packing=False)
    return SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(train_rows),
                      processing_class=tokenizer, callbacks=callbacks)
