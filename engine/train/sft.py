"""SFT recipe: liked and edited replies, loss on the reply's tokens only.

Rows are tokenized here (engine.train.chat_tokens), not by TRL: that finds the reply's tokens for any
chat template, where TRL's ``assistant_only_loss`` needs ``{% generation %}`` markers that real models'
templates lack. Rows longer than ``max_length`` keep their end (the reply) and lose the oldest context. With ``train.padding_free`` (the default) each batch is one sequence of its rows laid end to end,
with ``position_ids`` restarting at 0 for each row, instead of rows padded to the longest: on
mixed-length data the padding is most of the compute saved. FlashAttention keeps the rows apart by
itself; with sdpa/eager, transformers builds a block-diagonal mask from the restarting positions, but
only for models whose code does that (custom ``trust_remote_code`` models may not), so we check it on
the model itself (a packed pair must give the same logits as each row alone) and pad when it fails.
The rows per step, their order, truncation and the loss are the same either way: only padding goes.
"""

from __future__ import annotations

from typing import Any


def padding_free_choice(model, wanted: bool) -> tuple[bool, str]:
    """Whether batches can be padding-free for ``model``, and why (recorded in the stage's COMPLETE)."""
    impl = getattr(model.config, "_attn_implementation", None) or "eager"
    if not wanted:
        return False, "padding_free off in the profile"
    if "flash" in impl:
        return True, f"padding-free batches ({impl})"
    if packed_rows_stay_apart(model):
        return True, f"padding-free batches ({impl}; checked: packed rows do not attend to each other)"
    return False, f"padding-free disabled: with {impl} attention this model lets packed rows see each other, so " \
                  "batches are padded"


def _collator(pad_token_id: int, padding_free: bool, pad_to_multiple_of=None):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free,
                                           pad_to_multiple_of=pad_to_multiple_of)


def packed_rows_stay_apart(model) -> bool:
    """Two random rows packed into one padding-free sequence give the logits each gives alone."""
    import torch

    vocab = model.config.get_text_config().vocab_size
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in (7, 11)]
    batch = _collator(0, True)([{"input_ids": r} for r in rows])
    batch.pop("labels", None)
    param = next(model.parameters())
    batch = {k: v.to(param.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # no cache, as in training (load_base turns it off): with a cache transformers skips the packed mask
            packed = model(**batch, use_cache=False).logits[0].float()
            alone = torch.cat([model(input_ids=torch.tensor([r], device=param.device), use_cache=False).logits[0]
                               .float() for r in rows])
    except Exception:  # a model that does not take position_ids / these kwargs: pad
        return False
    finally:
        model.train(was_training)
    tol = 1e-3 if param.dtype == torch.float32 else 5e-2
    scale = float(alone.abs().max()) or 1.0
    return packed.shape == alone.shape and bool((packed - alone).abs().max() <= tol * scale)


def build(model, tokenizer, train_rows: list[dict], settings, args: dict, callbacks: list):
    """The SFT trainer; ``trainer.tuneloop_batching`` says whether its batches are padding-free and why."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from engine.train import distill
    from engine.train.chat_tokens import tokenize_sft_row

    model_id = getattr(tokenizer, "name_or_path", None) or "the model"
    table: list = []  # rehearsal rows with the starting model's distribution (train.rehearsal_distill)
    distilled = settings.rehearsal_distill  # rows may carry a teacher for the other stages' anchor only
    tokenized = [distill.encode_labels(tokenize_sft_row(tokenizer, row["messages"], model_id),
                                       row.get("teacher") if distilled else None, table) for row in train_rows]
    trainer_class = distill.trainer_class() if table else SFTTrainer
    # TRL's own padding_free refuses a max_length without packing (it truncates only padded data), and
    # packing would change how many rows a step sees; so the dataset is prepared (tokenized, truncated) as
    # for padded batches and only the collator changes. Pre-tokenized rows with labels are used as they are.
    config = SFTConfig(**args, assistant_only_loss=False, padding_free=False, packing=False,
                       truncation_mode="keep_end")
    trainer: Any = trainer_class(model=model, args=config, train_dataset=Dataset.from_list(tokenized),
                                 processing_class=tokenizer, callbacks=callbacks)
    if table:
        trainer.set_teacher(table)
    trainer.tuneloop_distilled = sum(1 for t in tokenized if any(label <= distill.OFFSET for label in t["labels"]))
    padding_free, why = padding_free_choice(trainer.model, settings.padding_free)
    if padding_free:
        trainer.model.config.use_cache = False  # the packed mask needs it off (see packed_rows_stay_apart)
        trainer.data_collator = _collator(trainer.data_collator.pad_token_id, True, config.pad_to_multiple_of)
        trainer.padding_free = True
    trainer.tuneloop_batching = why
    return trainer
