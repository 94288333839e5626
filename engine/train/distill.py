"""Rehearsal by distillation: the rehearsal rows train toward the starting model's next-token distribution, not
only toward its greedy text ("learning without forgetting").

Why: SFT on the starting model's greedy reply pins one token per position and says nothing about the rest of
the distribution, so the LoRA that learns the feedback is free to move everything the greedy path does not
pin; the controls broke that way beside rehearsal (bench/README.md: 27-29 of 30 kept with corrections, 20 with
critiques). Matching the starting model's top-``TOP_K`` probabilities at every reply position constrains far
more of what the model does, at the cost of storing them.

How: when the rehearsal rows are answered (engine.train.rehearsal, with the adapter the run starts from), each
reply is tokenized exactly as the SFT stage will tokenize it (engine.train.chat_tokens.tokenize_sft_row) and
one forward pass records, for every reply token, the starting model's ``TOP_K`` most likely next tokens and
their log-probs (``row["teacher"]``, frozen in data/rehearsal.jsonl with the row). The SFT stage gives those
positions a label that indexes a teacher table (``encode_labels``: below ``OFFSET``, so TRL's collator passes it
through like any label and padding stays -100), and ``DistillSFTTrainer.compute_loss`` trains them with the
cross-entropy to the teacher's renormalized top-k distribution (the KL to it up to a constant), the feedback's
tokens with the usual cross-entropy, averaged over all supervised tokens. ``train.rehearsal_distill`` turns it on.

The anchor (``train.anchor_weight``): DPO, KTO and RL stages do not train rehearsal rows, and what they push down
is the model's own way of answering, everywhere. ``anchor`` adds to each of their training steps the weighted
KL from the starting model's top-k distribution to the model's, on the next batch of rehearsal rows (the same
teacher tables), so the stage learns its preference where it was judged and is held where it was not.
"""

from __future__ import annotations

TOP_K = 20
OFFSET = -1000
"""Labels at or below this index the teacher table (label = OFFSET - index); -100 stays "no loss"."""


def teacher_for(lm, messages: list[dict], run_id: str | None, k: int = TOP_K) -> dict | None:
    """The starting model's top-``k`` next-token ids and log-probs at each reply token of ``messages`` (as
    tokenize_sft_row tokenizes them), with those ``input_ids`` to check the alignment at training time; None when
    the template gives no reply tokens."""
    import torch

    from engine.train.chat_tokens import IGNORE, tokenize_sft_row

    try:
        row = tokenize_sft_row(lm.tokenizer, messages, lm.model_id)
    except Exception:  # a template we cannot mask: the row trains on its text as before
        return None
    positions = [i for i, label in enumerate(row["labels"]) if label != IGNORE and i > 0]
    if not positions:
        return None
    with lm._lock:
        target, context = lm._generation_context(run_id)
        with context, torch.inference_mode():
            ids = torch.tensor([row["input_ids"]], device=lm.model.device)
            logits = target(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[[p - 1 for p in positions]], dim=-1)
    top = logp.topk(k, dim=-1)
    return {"input_ids": row["input_ids"], "positions": positions, "ids": top.indices.tolist(),
            "logprobs": [[round(v, 4) for v in r] for r in top.values.tolist()]}


def encode_labels(tokenized: dict, teacher: dict | None, table: list) -> dict:
    """``tokenized`` (input_ids, labels) with the teacher's positions relabelled to rows of ``table`` (appended
    to); unchanged when there is no teacher or the tokenization no longer matches the teacher's."""
    if not teacher or teacher.get("input_ids") != tokenized["input_ids"]:
        return tokenized
    labels = list(tokenized["labels"])
    for pos, ids, logprobs in zip(teacher["positions"], teacher["ids"], teacher["logprobs"]):
        labels[pos] = OFFSET - len(table)
        table.append((ids, logprobs))
    return {"input_ids": tokenized["input_ids"], "labels": labels}


def loss(logits, labels, teacher_ids, teacher_probs, num_items=None):
    """Cross-entropy on plain labels (>= 0) plus the cross-entropy to the teacher's top-k distribution at teacher
    positions (<= OFFSET), per supervised token; ``logits`` (batch, n, vocab) predict ``labels`` shifted by one."""
    import torch

    logits = logits[:, :-1].float()
    target = labels[:, 1:].to(logits.device)
    logp = torch.log_softmax(logits, dim=-1)
    plain = target >= 0
    taught = target <= OFFSET
    total = logits.new_zeros(())
    if plain.any():
        total = total - logp[plain].gather(1, target[plain].unsqueeze(1)).sum()
    if taught.any():
        index = (OFFSET - target[taught]).cpu()
        ids = teacher_ids[index].to(logits.device)
        probs = teacher_probs[index].to(logits.device)
        total = total - (probs * logp[taught].gather(1, ids)).sum()
    # like the model's own loss: per supervised token of the whole (accumulated) batch when the Trainer counted
    # them (it counts every label but -100, teacher positions included), else of this batch
    count = num_items if num_items is not None else int(plain.sum() + taught.sum())
    return total / max(1, count)


def teacher_tensors(table: list):
    """The teacher table as (ids, renormalized top-k probabilities) tensors."""
    import torch

    logprobs = torch.tensor([lp for _, lp in table], dtype=torch.float32)
    return torch.tensor([ids for ids, _ in table], dtype=torch.long), torch.softmax(logprobs, dim=-1)


def trainer_class():
    """SFTTrainer whose loss also trains the teacher positions toward the teacher's distribution."""
    from trl import SFTTrainer

    class DistillSFTTrainer(SFTTrainer):
        teacher_ids = None
        teacher_probs = None

        def set_teacher(self, table: list) -> None:
            self.teacher_ids, self.teacher_probs = teacher_tensors(table)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            value = loss(outputs.logits, labels, self.teacher_ids, self.teacher_probs, num_items_in_batch)
            return (value, outputs) if return_outputs else value

    return DistillSFTTrainer


def anchor(trainer, tokenizer, rows: list[dict], weight: float, batch_size: int, seed: int = 0) -> int:
    """Make ``trainer``'s training loss its own plus ``weight`` x the KL to the starting model on the next
    ``batch_size`` of ``rows`` (rehearsal rows with a teacher; in a shuffled cycle); logged as ``anchor_kl``.
    Returns how many rows it anchors on (0: none had a usable teacher, the trainer is unchanged)."""
    import random

    import torch

    from engine.train.chat_tokens import tokenize_sft_row

    model_id = getattr(tokenizer, "name_or_path", None) or "the model"
    table: list = []
    encoded = [encode_labels(tokenize_sft_row(tokenizer, r["messages"], model_id), r.get("teacher"), table)
               for r in rows if r.get("teacher")]
    encoded = [e for e in encoded if any(label <= OFFSET for label in e["labels"])]
    if weight <= 0 or not encoded:
        return 0
    teacher_ids, teacher_probs = teacher_tensors(table)
    # the logged KL: sum over the teacher's top k of p~ (log p - log q), 0 where the model is the starting model
    # (the cross-entropy to the renormalized p~ alone is -log(top-k mass) there)
    own = -(teacher_probs * torch.tensor([lp for _, lp in table], dtype=torch.float32)).sum(-1)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order: list[int] = []
    shuffle = random.Random(seed)
    own_loss = trainer.compute_loss

    def next_batch(device):
        if len(order) < batch_size:
            order.extend(shuffle.sample(range(len(encoded)), len(encoded)))
        chosen = [encoded[order.pop(0)] for _ in range(min(batch_size, len(encoded)))]
        width = max(len(e["input_ids"]) for e in chosen)
        ids = torch.full((len(chosen), width), pad, dtype=torch.long)
        labels = torch.full((len(chosen), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for i, e in enumerate(chosen):
            n = len(e["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
        return ids.to(device), labels, mask.to(device)

    def compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
        result = own_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if not model.training:  # the stage's own evaluation: its loss alone
            return result
        device = next(p for p in model.parameters() if p.requires_grad).device
        ids, labels, mask = next_batch(device)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        cross_entropy = loss(logits, labels, teacher_ids, teacher_probs)
        taught = labels[:, 1:][labels[:, 1:] <= OFFSET]
        kl = cross_entropy - own[(OFFSET - taught)].mean().to(cross_entropy.device)
        metrics = getattr(trainer, "_metrics", None)
        if isinstance(metrics, dict) and "train" in metrics:
            metrics["train"]["anchor_kl"].append(float(kl.detach()))
        extra = weight * kl
        if return_outputs:
            value, outputs = result
            return value + extra, outputs
        return result + extra

    trainer.compute_loss = compute_loss
    return len(encoded)
