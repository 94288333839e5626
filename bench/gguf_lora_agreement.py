"""The user's adapter through llama.cpp gives the transformers path's greedy answer (issue 26): on the learning
bench's taught questions (``FACTS``) and control prompts (``CONTROLS``), with a LoRA trained by ``engine finetune``
on SmolLM2-135M-Instruct, the first 24 greedy tokens of

* transformers + PEFT on the de-quantized weights tuneloop trains on (the converted folder in home/models/), and
* llama-cpp-python on the Q4_1 GGUF itself with the run's GGUF LoRA (engine.runtime.gguf_lora),

both fed the same prompt token ids (the profile's system prompt, the chat template). Agreement of a prompt = the
length of the common prefix / the longer of the two replies (cut at 24 tokens; an end token counts). Target: >= 95% on
>= 90% of prompts. The base model (no adapter) is measured the same way as a reference; the prompts under 95% are
listed with where they part.

    python -m bench.gguf_lora_agreement [--home HOME --run RUN] [--corrections 4] [--json OUT]

Without ``--home`` it trains the adapter first in a temp home: the first N facts as corrections (the reply "I do not
know." edited to the fact), ``engine finetune`` with the profile's defaults; the run's adapter is used whether or not
the gate promoted it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.common import REPO_ROOT, Row, finish, parse_args, smollm2_dir, smollm2_gguf, temp_home
from bench.learning_data import CONTROLS, FACTS

BENCH = "gguf_lora_agreement"
PROFILE = "smollm2-135m-instruct"
TOKENS = 24


def train(home, n: int) -> tuple[str, float]:
    from engine.feedback import FeedbackLog
    from engine.profiles import load_profile

    profile = load_profile(PROFILE, home)
    log = FeedbackLog(home, PROFILE)
    for fact in FACTS[:n]:
        c = uuid.uuid4().hex
        user = log.add_message(c, None, "user", fact.question)
        reply = log.add_message(c, user["id"], "assistant", "I do not know.",
                                generation={"system_prompt": profile.system_prompt})
        log.edit(reply["id"], fact.answer)
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    subprocess.run([sys.executable, "-m", "engine", "finetune", "--profile", PROFILE, "--home", str(home.root)],
                   cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    runs = sorted(p.name for p in home.runs_dir(PROFILE).iterdir() if (p / "adapter").is_dir())
    return runs[-1], time.perf_counter() - t0


def agreement(a: list[int], b: list[int]) -> float:
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k / max(len(a), len(b), 1)


def measure(home, run: str, notes: list[str]) -> list[Row]:
    import torch
    from llama_cpp import Llama
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.profiles import load_profile
    from engine.runtime.gguf_lora import ensure_gguf_lora

    profile = load_profile(PROFILE, home)
    folder = home.models_dir / smollm2_dir()[0].name
    if not folder.exists():
        shutil.copytree(smollm2_dir()[0], folder)
    gguf = smollm2_gguf()
    adapter = home.run_dir(PROFILE, run) / "adapter"
    t0 = time.perf_counter()
    lora = ensure_gguf_lora(adapter, gguf)
    notes.append(f"GGUF LoRA {lora.stat().st_size / 1e6:.1f} MB made in {time.perf_counter() - t0:.2f} s")
    tok = AutoTokenizer.from_pretrained(str(folder))
    base = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(adapter))
    tuned.eval()
    threads = max(1, min(2, os.cpu_count() or 1))
    # the same weights de-quantized into an f16 GGUF (export-model --format gguf --adapter base): llama.cpp's f16
    # kernels instead of Q4_1 x Q8_1 (which rounds the activations to 8 bits), the LoRA file unchanged
    f16 = Path(home.root) / "base-f16.gguf"
    if not f16.exists():
        from engine.runtime.export import export_gguf

        export_gguf(profile, home, "base", f16, dtype="f16")

    def load(path, lora_file=None):
        kw = {"lora_path": str(lora_file)} if lora_file else {}
        return Llama(model_path=str(path), n_ctx=512, n_threads=threads, verbose=False, **kw)

    llm = {"adapter": load(gguf, lora), "base": load(gguf), "adapter, f16 base GGUF": load(f16, lora),
           "base, f16 base GGUF": load(f16)}
    prompts = [("taught", f.question) for f in FACTS] + [("control", c.prompt) for c in CONTROLS]

    def ids(q):
        return tok.apply_chat_template([{"role": "system", "content": profile.system_prompt},
                                        {"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                       return_dict=False)

    def hf(model, q):
        x = ids(q)
        with torch.no_grad():
            out = model.generate(torch.tensor([x]), max_new_tokens=TOKENS, do_sample=False,
                                 pad_token_id=tok.eos_token_id)
        return out[0, len(x):].tolist()

    def cpp(model, q):
        out = []
        for t in model.generate(ids(q), temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            out.append(int(t))
            if t == model.token_eos() or len(out) >= TOKENS:
                break
        return out

    rows, expected = [], {}
    for which in llm:
        scores, taught_hf, taught_cpp, misses = [], 0, 0, []
        for kind, q in prompts:
            with_adapter = which.startswith("adapter")
            if (with_adapter, q) not in expected:
                if with_adapter:
                    expected[with_adapter, q] = hf(tuned, q)
                else:
                    with tuned.disable_adapter():
                        expected[with_adapter, q] = hf(tuned, q)
            want = expected[with_adapter, q]
            got = cpp(llm[which], q)
            s = agreement(want, got)
            scores.append(s)
            if s < 0.95:
                k = round(s * max(len(want), len(got)))
                misses.append(f"{q[:40]!r} parts at token {k}: {tok.decode(want[k:k + 4])!r} vs {tok.decode(got[k:k + 4])!r}")
            if kind == "taught" and with_adapter:
                fact = next(f for f in FACTS if f.question == q)
                taught_hf += fact.ok(tok.decode(want))
                taught_cpp += fact.ok(tok.decode(got))
        good = sum(s >= 0.95 for s in scores)
        file = "f16 GGUF" if "f16" in which else gguf.name
        rows.append(Row(BENCH, f"{which}: prompts with >= 95% of the first {TOKENS} greedy tokens identical, llama.cpp "
                               f"({file}) vs transformers", good / len(prompts), ">= 0.90" if which == "adapter" else "",
                        "of prompts", f"{good} of {len(prompts)} (20 taught + 30 controls); mean agreement "
                        f"{sum(scores) / len(scores):.3f}; run {run}"))
        notes.extend(f"{which}: {m}" for m in misses)
        if which.startswith("adapter"):
            rows.append(Row(BENCH, f"{which}: taught facts stated in the first {TOKENS} tokens, llama.cpp", taught_cpp,
                            "", "of 20", f"transformers + PEFT: {taught_hf}; the run was taught the first facts only"))
    rows += decode_speeds(llm, ids(prompts[-1][1]))
    return rows


def decode_speeds(llm: dict, ids: list[int], n: int = 64, reps: int = 3) -> list[Row]:
    """llama.cpp's greedy decode tokens/s with the LoRA and on the f16 copy, each over the Q4_1 file without an
    adapter, interleaved, median of ``reps``."""
    import statistics

    def speed(model) -> float:
        model.reset()
        count, t0 = 0, time.perf_counter()
        for _ in model.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            count += 1
            if count >= n:
                break
        return count / (time.perf_counter() - t0)

    runs: dict[str, list[float]] = {k: [] for k in llm}
    for _ in range(reps):
        for k, model in llm.items():
            runs[k].append(speed(model))
    med = {k: statistics.median(v) for k, v in runs.items()}
    return [Row(BENCH, f"llama.cpp decode tok/s: {k} / base (Q4_1)", med[k] / med["base"], "", "x",
                f"{n} greedy tokens incl. the prompt's eval, median of {reps}, interleaved; {med[k]:.1f} vs "
                f"{med['base']:.1f} tok/s") for k in llm if k != "base"]


def main(argv=None) -> list[Row]:
    def extra(parser):
        parser.add_argument("--home", help="a home with a trained SmolLM2 run (default: train one in a temp home)")
        parser.add_argument("--run", help="the run id in --home (default: its newest run with an adapter)")
        parser.add_argument("--corrections", type=int, default=4, help="facts taught when training here")

    args = parse_args(__doc__.splitlines()[0], argv, extra)
    from engine.home import Home

    rows: list[Row] = []
    notes: list[str] = []
    if args.home:
        home = Home.resolve(args.home)
        run = args.run or sorted(p.name for p in home.runs_dir(PROFILE).iterdir() if (p / "adapter").is_dir())[-1]
        rows += measure(home, run, notes)
    else:
        with temp_home("tuneloop-gguf-lora-") as home:
            shutil.copytree(smollm2_dir()[0], home.models_dir / smollm2_dir()[0].name)
            run, seconds = train(home, args.corrections)
            notes.append(f"trained {run} on {args.corrections} corrections in {seconds:.0f} s")
            rows += measure(home, run, notes)
    return finish(BENCH, rows, args, {"notes": notes})


if __name__ == "__main__":
    main()
