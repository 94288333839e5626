"""``engine finetune``: run directories, frozen data, SFT/DPO/KTO recipes, the promotion gate, resume.

Heavy libraries (torch, transformers, trl, peft) are imported inside functions only.
"""
