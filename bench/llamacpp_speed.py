"""llama.cpp backend: decode tokens/s through the app's backend against llama-cpp-python driven directly, model
ready warm, and first paint, on SmolLM2-135M-Instruct (its Q4_1 GGUF, run by llama.cpp from the f16 copy
engine/runtime/gguf_f16.py makes once; issue 26).

* **decode, runtime**: ``LlamaCppModel.stream`` (the engine's backend, what the app and ``engine serve`` call)
  against llama-cpp-python's own ``create_completion(stream=True)`` on a second ``Llama`` of the same file with
  the same decode threads and the same rendered prompt, greedy; interleaved, median of paired ratios and the
  spread. Decode rate = (tokens - 1) / (last token - first token), so the prompt's evaluation is left out.
* **decode, in the app**: the headless TUI (fresh process, the default profile) answers a message; its
  generation record gives the decode rate; the baseline is llama-cpp-python directly in a fresh process, run
  right before each app run. Also with 2 decode threads (``TUNELOOP_LLAMA_THREADS=2``), to show the choice, and
  with ``--adapter`` promoted in the app's home (llama-cpp-python given the same GGUF LoRA as ``lora_path``).
* **model ready, warm**: ``load_chat_model`` in this process (after the imports), and the app from spawn to
  ModelReady (bench.startup's headless child).
* **first paint**: bench.startup's pseudo-terminal measure, against a minimal Textual app.

Targets: decode >= 0.9x llama.cpp's own; ready <= 2 s warm; first paint <= 0.6 s.

    python -m bench.llamacpp_speed [--quick] [--json OUT] [--adapter RUN_ADAPTER_DIR | random]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from bench.common import REPO_ROOT, SMOLLM2_PROFILE, Row, finish, median, median_ratio, not_measured, parse_args

BENCH = "llamacpp_speed"
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]
TOKENS = 160


def _spread(xs: list[float]) -> str:
    return f"min {min(xs):.2f}, max {max(xs):.2f}"


def _direct_rate(llama, prompt_text: str, tokens: int) -> tuple[float, int]:
    """llama-cpp-python used as its README shows: a streamed completion, greedy."""
    stamps = []
    for _chunk in llama.create_completion(prompt_text, max_tokens=tokens, temperature=0.0, stream=True):
        stamps.append(time.perf_counter())
    return ((len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0), len(stamps)


def _engine_rate(lm, tokens: int) -> tuple[float, int]:
    from engine.runtime import GenerationParams

    gen = lm.stream(PROMPT, GenerationParams.from_profile(lm.profile, do_sample=False, max_new_tokens=tokens))
    gen.coalesce_s = 0  # one piece per token: a time stamp per token, as the direct loop has
    stamps = [time.perf_counter() for _ in gen]
    n = gen.record["completion_tokens"]
    return ((n - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else 0.0), n


def runtime_decode(reps: int, home, adapter: Path | None = None) -> tuple[list[Row], dict]:
    import llama_cpp

    from engine.profiles import load_profile
    from engine.runtime import load_chat_model

    t0 = time.perf_counter()
    lm = load_chat_model(load_profile(SMOLLM2_PROFILE, home), home, adapter="base")
    ready = time.perf_counter() - t0
    readies = [ready]
    for _ in range(2):  # warm: the file is in the page cache now
        t0 = time.perf_counter()
        again = load_chat_model(load_profile(SMOLLM2_PROFILE, home), home, adapter="base")
        readies.append(time.perf_counter() - t0)
        del again
    direct = llama_cpp.Llama(model_path=str(lm.path), n_ctx=lm.context_length, n_threads=lm.threads,
                             n_threads_batch=lm.llama.n_threads_batch, verbose=False)
    prompt_text = lm._template.render(lm.prompt_messages(PROMPT))
    ours, theirs, counts = [], [], []
    _engine_rate(lm, 8), _direct_rate(direct, prompt_text, 8)  # warm-up
    for i in range(reps):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                rate, n = _engine_rate(lm, TOKENS)
                ours.append(rate)
                counts.append(n)
            else:
                rate, _ = _direct_rate(direct, prompt_text, TOKENS)
                theirs.append(rate)
    ratios = [a / b for a, b in zip(ours, theirs)]
    if adapter is not None:
        rows_adapter = adapter_decode(lm, reps, adapter, prompt_text)
    rows = [
        Row(BENCH, f"decode, backend / llama-cpp-python ({lm.threads} thread(s))", median(ratios), target=">= 0.9",
            unit="x", detail=f"median of {reps} interleaved pairs ({_spread(ratios)}); backend {median(ours):.1f} "
                             f"tok/s, llama-cpp-python create_completion(stream) {median(theirs):.1f} tok/s; "
                             f"~{median(counts):.0f} greedy tokens"),
        Row(BENCH, "model ready, load_chat_model in-process, warm", median(readies[1:]), target="<= 2", unit="s",
            detail=f"median of {len(readies) - 1} (first load {readies[0]:.2f} s); llama_cpp imported once"),
    ]
    if adapter is not None:
        rows += rows_adapter
    return rows, {"ours": ours, "theirs": theirs, "readies": readies}


def adapter_decode(lm, reps: int, adapter: Path, prompt_text: str) -> list[Row]:
    """The same with a run's adapter: the backend (gguf_lora's file, switched on with llama_set_adapters_lora)
    against llama-cpp-python given the same file as ``lora_path``."""
    import llama_cpp

    from engine.runtime.gguf_lora import ensure_gguf_lora

    t0 = time.perf_counter()
    lm.load_adapter("bench", adapter)
    loaded = time.perf_counter() - t0
    lm.use_adapter("bench")
    direct = llama_cpp.Llama(model_path=str(lm.path), n_ctx=lm.context_length, n_threads=lm.threads,
                             n_threads_batch=lm.threads, verbose=False,
                             lora_path=str(ensure_gguf_lora(adapter, lm.path)))
    ours, theirs = [], []
    _engine_rate(lm, 8), _direct_rate(direct, prompt_text, 8)
    for _ in range(reps):
        ours.append(_engine_rate(lm, TOKENS)[0])
        theirs.append(_direct_rate(direct, prompt_text, TOKENS)[0])
    lm.use_adapter(None)
    ratios = [a / b for a, b in zip(ours, theirs)]
    return [Row(BENCH, "decode with the adapter, backend / llama-cpp-python lora_path", median(ratios), target=">= 0.9",
                unit="x", detail=f"median of {reps} pairs ({_spread(ratios)}); {median(ours):.1f} vs "
                                 f"{median(theirs):.1f} tok/s; adapter converted and loaded in {loaded:.2f} s")]


DIRECT_CHILD = textwrap.dedent("""
    import json, sys, time
    import llama_cpp
    from engine.profiles import load_profile
    from engine.runtime import gguf
    from engine.home import Home
    from engine.runtime.gguf_f16 import runnable_base
    from engine.runtime.llamacpp import decode_threads
    profile = load_profile(sys.argv[1])
    path = runnable_base(Home.resolve(None), gguf.locate(profile.model.id))  # the file the app runs
    lora = {"lora_path": sys.argv[5]} if len(sys.argv) > 5 else {}  # the promoted adapter's GGUF LoRA
    llama = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_threads=int(sys.argv[2]), verbose=False, **lora)
    text = llama.metadata["tokenizer.chat_template"]
    from engine.runtime.chat_template import ChatTemplate
    chat = [{"role": "system", "content": profile.system_prompt}, {"role": "user", "content": sys.argv[3]}]
    prompt = ChatTemplate(text, "", "").render(chat)
    stamps = [time.perf_counter() for _ in llama.create_completion(prompt, max_tokens=int(sys.argv[4]),
                                                                    temperature=0.0, stream=True)]
    print(json.dumps({"rate": (len(stamps) - 1) / (stamps[-1] - stamps[0]), "n": len(stamps)}))
""")

APP_CHILD = textwrap.dedent("""
    import asyncio, json, os, sys, time
    home, profile, question, tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from engine.home import Home
    from tui.app import create_app
    h = Home.resolve(home)
    os.makedirs(h.profiles_dir, exist_ok=True)
    async def main():
        app = create_app(h, profile)
        async with app.run_test(size=(100, 30)) as pilot:
            while getattr(app, "lm", None) is None:
                await asyncio.sleep(0.02)
            await pilot.pause(0.3)  # let the first layout settle before typing
            app.composer.focus()
            app.composer.text = question
            await pilot.press("enter")
            log = h.feedback_dir(profile) / "events.jsonl"
            deadline = time.time() + 600
            while time.time() < deadline:
                await asyncio.sleep(0.1)
                if log.exists():
                    rows = [json.loads(x) for x in log.read_text().splitlines()]
                    replies = [r for r in rows if r.get("role") == "assistant"]
                    if replies:
                        g = replies[-1]["generation"]
                        n, el, ttft = g["completion_tokens"], g["elapsed_s"], g["ttft_s"]
                        print(json.dumps({"rate": (n - 1) / (el - ttft), "n": n, "backend": g["backend"],
                                          "threads": g.get("threads"), "adapter": g.get("adapter")}))
                        return
    asyncio.run(main())
""")


def _run_child(code: str, args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900,
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _greedy_profile(home: Path) -> None:
    """The default profile as a user profile in ``home``, greedy with the bench's token count (same tokens as the
    direct baseline)."""
    from engine.profiles import load_profile

    text = Path(load_profile(SMOLLM2_PROFILE).path).read_text()
    text = text.replace("do_sample = true", "do_sample = false").replace("max_new_tokens = 256",
                                                                         f"max_new_tokens = {TOKENS}")
    (home / "profiles").mkdir(parents=True, exist_ok=True)
    (home / "profiles" / f"{SMOLLM2_PROFILE}.toml").write_text(text)


def promote_adapter(home: Path, adapter: Path) -> tuple[str, Path]:
    """``adapter`` as the SmolLM2 profile's promoted run in ``home`` (the app starts on it); its run id and the
    GGUF LoRA the app's backend converts it to (what llama-cpp-python is given as ``lora_path``)."""
    import shutil

    from engine.adapters import set_promoted
    from engine.home import Home
    from engine.profiles import load_profile
    from engine.runtime import gguf
    from engine.runtime.gguf_f16 import runnable_base
    from engine.runtime.gguf_lora import ensure_gguf_lora

    h = Home.resolve(home)
    run_id = "20260101-000000-sft"
    run = h.run_dir(SMOLLM2_PROFILE, run_id)
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(adapter, run / "adapter")
    (run / "report.json").write_text(json.dumps({"run_id": run_id, "method": "sft", "promoted": True}))
    set_promoted(h, SMOLLM2_PROFILE, run_id)
    base = runnable_base(h, gguf.locate(load_profile(SMOLLM2_PROFILE, h).model.id))
    return run_id, ensure_gguf_lora(run / "adapter", base)


def random_adapter(home) -> Path:
    """A LoRA of the profile's model (r 8, all-linear, random B so it changes replies; seeded): what ``--adapter
    random`` measures with when no trained run is at hand."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.profiles import load_profile
    from engine.runtime.gguf import ensure_converted

    model_id = load_profile(SMOLLM2_PROFILE, home).model.id
    model = AutoModelForCausalLM.from_pretrained(str(ensure_converted(model_id, home)), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.03)
    peft_model.peft_config["default"].base_model_name_or_path = model_id
    out = Path(home.root) / "random-adapter"
    peft_model.save_pretrained(str(out))
    return out


def app_decode(reps: int, threads: int, home: Path, adapter: Path | None = None) -> Row:
    """The app's decode rate (its own record) over llama-cpp-python's, fresh processes, interleaved; with
    ``adapter`` promoted (the app chats with it) and given to llama-cpp-python as ``lora_path``."""
    question = PROMPT[0]["content"]
    _greedy_profile(home)
    run_id, lora = promote_adapter(home, adapter) if adapter is not None else (None, None)
    ours, theirs = [], []
    for _ in range(reps):
        theirs.append(_run_child(DIRECT_CHILD, [SMOLLM2_PROFILE, str(threads), question, str(TOKENS),
                                                *([str(lora)] if lora else [])],
                                 {"TUNELOOP_HOME": str(home)})["rate"])  # the file the app runs, from its home
        _clear_log(home)
        args = [str(home), SMOLLM2_PROFILE, question, str(TOKENS)]
        env = {"TUNELOOP_LLAMA_THREADS": str(threads), "TUNELOOP_HOME": str(home)}
        try:
            got = _run_child(APP_CHILD, args, env)
        except RuntimeError:  # a shared machine can starve the app once (bench.common.run_with_one_retry)
            _clear_log(home)
            got = _run_child(APP_CHILD, args, env)
        if got["backend"] != "llamacpp" or got["adapter"] != run_id:
            raise RuntimeError(f"the app chatted through {got['backend']} with adapter {got['adapter']}")
        ours.append(got["rate"])
    if adapter is not None:
        import shutil

        shutil.rmtree(Path(home) / "runs", ignore_errors=True)  # the next rows chat with the base model
    ratios = [a / b for a, b in zip(ours, theirs)]
    with_adapter = " with the promoted adapter (lora_path directly)" if adapter is not None else ""
    return Row(BENCH, f"decode in the app (headless TUI){with_adapter} / llama-cpp-python, {threads} thread(s)",
               median_ratio(ours, theirs), target=">= 0.9", unit="x",
               detail=f"median of {reps} pairs ({_spread(ratios)}); app {median(ours):.1f} tok/s (its generation "
                      f"record: decode after the first token), llama-cpp-python {median(theirs):.1f} tok/s; "
                      f"fresh processes, greedy, up to {TOKENS} tokens")


def _clear_log(home: Path) -> None:
    import shutil

    shutil.rmtree(home / "feedback", ignore_errors=True)


def run(quick: bool, adapter: Path | None = None) -> tuple[list[Row], dict]:
    from bench.startup import MINIMAL_APP, headless_run, pty_first_paint
    from engine.home import Home
    from engine.runtime.backend import llamacpp_installed

    if not llamacpp_installed():
        return [not_measured(BENCH, "decode", "llama-cpp-python is not installed", target=">= 0.9")], {}
    reps = 3 if quick else 7
    rows: list[Row] = []
    meta: dict = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-llamacpp-") as tmp:
        home = Home.resolve(Path(tmp) / "home").ensure()
        if adapter is not None and str(adapter) == "random":
            adapter = random_adapter(home)
        got, meta["runtime"] = runtime_decode(reps, home, adapter)
        rows += got
        app_reps = 2 if quick else 3
        for threads, with_adapter in [(1, None), (2, None)] + ([(1, adapter)] if adapter is not None else []):
            try:
                rows.append(app_decode(app_reps, threads, Path(home.root), with_adapter))
            except Exception as exc:  # noqa: BLE001 - a row that says why, never a made-up number
                rows.append(not_measured(BENCH, f"decode in the app, {threads} thread(s)", str(exc), ">= 0.9", "x"))
        _clear_log(Path(home.root))
        runs = [headless_run(Path(home.root), profile=SMOLLM2_PROFILE) for _ in range(app_reps + 1)]
        readies = [r["ready_s"] for r in runs if "ready_s" in r]
        paints = [r["paint_s"] for r in runs if "paint_s" in r]
        if readies:
            rows.append(Row(BENCH, "model ready, the app from spawn, warm", median(readies), target="<= 2", unit="s",
                            detail=f"median of {len(readies)} ({_spread(readies)}); fresh process: Python, Textual, "
                                   "the app, llama_cpp, the model; headless run_test"))
        if paints:
            rows.append(Row(BENCH, "first paint, headless run_test (fresh process)", median(paints), unit="s",
                            detail=f"median of {len(paints)}; torch imported by then in "
                                   f"{sum(r.get('torch_at_paint', False) for r in runs)}/{len(runs)}"))
        ptys, floors = [], []
        for _ in range(app_reps + 1):
            ptys.append(pty_first_paint(Path(home.root), profile=SMOLLM2_PROFILE))
            floors.append(pty_first_paint(Path(home.root), command=[sys.executable, "-c", MINIMAL_APP]))
        rows.append(Row(BENCH, "first paint, real terminal (pty, 100x30)", median(ptys), target="<= 0.6", unit="s",
                        detail=f"median of {len(ptys)} ({_spread(ptys)}); a minimal Textual app: {median(floors):.2f} "
                               f"s ({_spread(floors)})"))
    meta["notes"] = [f"machine load: {meta['uptime']}"]
    return rows, meta


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(__doc__.splitlines()[0], argv, extra=lambda p: p.add_argument(
        "--adapter", type=Path, help="a PEFT adapter folder of the SmolLM2 profile (e.g. runs/<profile>/<run>/adapter): "
                                     "also measure decoding with it, in the backend and in the app; `random`: a random LoRA"))
    rows, meta = run(args.quick, args.adapter)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
