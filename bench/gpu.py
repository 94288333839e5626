"""GPU decode and training speed, as fractions of what the card can do. Skips without CUDA.

* Device copy bandwidth, measured (a large device-to-device copy: bytes read + written per second).
* Batch-1 greedy decode tokens/s for random-weight models of Qwen2.5-0.5B's and Qwen2.5-7B's shape in
  bf16: eager (dynamic cache) and the runtime's fast path. The runtime's fast path
  (``[model] fast_path = true``, engine/runtime/loading.py) sets
  ``generation_config.cache_implementation = "static"`` on CUDA, with which ``generate`` compiles the
  decoding step (torch.compile) once and replays it; the bench applies that same setting to the
  model. Decode rate excludes the prefill (time for N tokens minus time for 1 token). Each rate is
  also given as a fraction of the memory-bandwidth ceiling: measured bandwidth / weight bytes per
  token (every weight is read once per decoded token at batch 1).
* LoRA SFT tokens/s and MFU for the 0.5B shape (bf16 weights, LoRA r=16 on all linear layers, AdamW,
  random tokens, batch 8 x 512). MFU counts 4 x parameters FLOPs per token (forward 2N; backward
  through frozen weights 2N for activation gradients, no weight gradients) plus attention, over
  the card's dense bf16 peak from its datasheet (known cards only).

    python -m bench.gpu [--quick] [--json OUT]
"""

from __future__ import annotations

from bench.common import QWEN25_05B, QWEN25_7B, Row, finish, median, not_measured, now, parse_args, qwen_config

BENCH = "gpu"

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) from the vendors' datasheets.
PEAK_BF16_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0,
    "H100": 756.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0, "RTX 4090": 165.0,
}


def peak_tflops(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def copy_bandwidth(gib: float = 2.0, reps: int = 10) -> float:
    """Bytes per second of a device-to-device copy (read + write counted)."""
    import torch

    n = int(gib * 2**30) // 2
    a = torch.empty(n, dtype=torch.bfloat16, device="cuda")
    b = torch.empty_like(a)
    b.copy_(a)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = now()
        b.copy_(a)
        torch.cuda.synchronize()
        times.append(now() - t0)
    del a, b
    torch.cuda.empty_cache()
    return 2 * n * 2 / median(times)


def build_gpu_model(shape: dict):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(qwen_config(shape), dtype=torch.bfloat16)
    model.eval()
    return model


def decode_rate(model, n_tokens: int, static: bool, reps: int) -> float:
    """Greedy batch-1 decode tokens/s excluding prefill."""
    import torch

    model.generation_config.cache_implementation = "static" if static else None
    ids = torch.randint(0, 1000, (1, 64), device="cuda")
    kw = dict(do_sample=False, temperature=None, top_p=None, top_k=None,
              eos_token_id=None, pad_token_id=model.config.pad_token_id)

    def timed(n: int) -> float:
        torch.cuda.synchronize()
        t0 = now()
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                           min_new_tokens=n, **kw)
        torch.cuda.synchronize()
        return now() - t0

    for _ in range(3 if static else 1):  # static: the first calls compile (for each cache length)
        timed(n_tokens)
        timed(1)
    rates = []
    for _ in range(reps):
        full, one = timed(n_tokens), timed(1)
        rates.append((n_tokens - 1) / max(full - one, 1e-9))
    return median(rates)


def lora_sft(shape: dict, steps: int) -> tuple[float, float]:
    """(tokens/s, FLOPs per token) of LoRA training on the given shape."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = build_gpu_model(shape)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch, seq = 8, 512
    ids = torch.randint(0, 1000, (batch, seq), device="cuda")

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = now()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    tps = batch * seq * steps / (now() - t0)
    layers, hidden = shape["num_hidden_layers"], shape["hidden_size"]
    flops_per_token = 4 * n_params + 3 * 2 * 2 * layers * seq * hidden  # + attention scores/values fwd+bwd
    model = opt = None  # free the memory before the next measurement
    torch.cuda.empty_cache()
    return tps, flops_per_token


def run(quick: bool) -> tuple[list[Row], dict]:
    import torch

    card = torch.cuda.get_device_name(0)
    reps = 2 if quick else 5
    n_tokens = 64 if quick else 256
    bw = copy_bandwidth()
    rows = [Row(BENCH, "device copy bandwidth", bw / 1e9, unit="GB/s", detail=f"{card}; read + write")]
    meta: dict = {"card": card, "bandwidth_bytes_per_s": bw, "notes": [f"card: {card}"]}
    for label, shape in (("Qwen2.5-0.5B shape", QWEN25_05B), ("Qwen2.5-7B shape", QWEN25_7B)):
        try:
            model = build_gpu_model(shape)
        except Exception as exc:  # e.g. out of memory
            rows.append(not_measured(BENCH, f"decode {label}", f"{type(exc).__name__}: {exc}"))
            continue
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        ceiling = bw / weight_bytes
        for mode, static in (("eager", False), ("fast path (static cache + compile)", True)):
            try:
                rate = decode_rate(model, n_tokens, static, reps)
            except Exception as exc:
                rows.append(not_measured(BENCH, f"decode {label}, {mode}", f"{type(exc).__name__}: {exc}"))
                continue
            rows.append(Row(BENCH, f"decode {label}, {mode}: fraction of bandwidth ceiling", rate / ceiling,
                            unit="x", detail=f"{rate:.0f} tok/s batch 1 bf16, {n_tokens} tokens, median of {reps}; "
                                             f"ceiling {ceiling:.0f} tok/s ({weight_bytes / 1e9:.2f} GB weights)"))
        del model
        torch.cuda.empty_cache()
    try:
        tps, fpt = lora_sft(QWEN25_05B, steps=5 if quick else 20)
        peak = peak_tflops(card)
        mfu = tps * fpt / (peak * 1e12) if peak else None
        rows.append(Row(BENCH, "LoRA SFT Qwen2.5-0.5B shape: MFU", mfu, unit="x",
                        detail=f"{tps:,.0f} tokens/s, batch 8 x 512, bf16 autocast; peak "
                               f"{peak or 'unknown'} TFLOP/s for {card}",
                        missing="" if mfu is not None else f"not measured: no datasheet peak for {card} "
                                                           f"({tps:,.0f} tokens/s measured)"))
    except Exception as exc:
        rows.append(not_measured(BENCH, "LoRA SFT Qwen2.5-0.5B shape", f"{type(exc).__name__}: {exc}"))
    return rows, meta


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(__doc__.splitlines()[0], argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu: skipped: no CUDA")
        rows = [not_measured(BENCH, "decode and LoRA SFT on GPU", "skipped: no CUDA on this machine")]
        return finish(BENCH, rows, args, {"skipped": "no CUDA"})
    rows, meta = run(args.quick)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
