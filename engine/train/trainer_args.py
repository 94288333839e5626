"""The TrainingArguments every recipe shares: where checkpoints go, how often, CPU/GPU precision.

Kept in one place so SFT, DPO and KTO (and the reward trainer) checkpoint and log the same way.
"""

from __future__ import annotations

from pathlib import Path

from engine.profiles import TrainSettings


def common_args(settings: TrainSettings, output_dir: Path, use_cpu: bool, dtype, tensorboard_dir: Path | None = None,
                epochs: float | None = None) -> dict:
    """Keyword arguments for any TRL ``*Config`` (they all extend ``TrainingArguments``)."""
    import torch

    bf16 = (not use_cpu) and dtype == torch.bfloat16
    fp16 = (not use_cpu) and dtype == torch.float16
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accum,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs if epochs is None else epochs,
        max_steps=settings.max_steps,
        lr_scheduler_type="constant",  # a stop at the budget leaves a model trained at full rate, not a decayed one
        logging_steps=1,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=max(1, settings.save_steps),
        save_total_limit=2,  # the newest (maybe incomplete) and the one before it (complete)
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=use_cpu,
        bf16=bf16,
        fp16=fp16,
        gradient_checkpointing=settings.gradient_checkpointing and not use_cpu,
        disable_tqdm=True,
        report_to=["tensorboard"] if tensorboard_dir else [],  # its folder: $TENSORBOARD_LOGGING_DIR (see tensorboard_env)
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0,
        max_length=settings.max_length,
    )


def tensorboard_env(tensorboard_dir: Path | None) -> None:
    """transformers 5 takes the TensorBoard folder from the environment, not from the arguments."""
    import os

    if tensorboard_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir)


def strip_default_printer(trainer) -> None:
    """Our progress display replaces the Trainer's raw dict printing."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
