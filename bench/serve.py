"""``engine serve`` throughput: tokens/s of a streamed reply through the server (openai client, SSE,
the feedback-log write included) over the in-process runtime (``lm.stream``) on the same loaded model,
and requests/s with p50/p95 latency under a bounded loopback load over the same requests run one after
another in-process.

The server is the real command (``engine serve`` in its own process on a free loopback port, as a user
runs it); the in-process path loads the same model folder in this process. Both decode greedily, so
the token counts are equal (checked). Only one side works at a time (the other process idles), and
each repetition measures the two back to back in alternating order; ratios are per repetition, then
the median, with the spread (min-max) beside it. The client (``openai``) runs in this process. Target:
serve tokens/s >= 0.9 of in-process (issue 16).

    python -m bench.serve [--quick] [--json OUT] [--layers N]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from bench.common import (
    QWEN25_05B,
    Row,
    build_random_model_dir,
    describe_shape,
    finish,
    median,
    now,
    parse_args,
    percentile,
    set_threads,
    temp_home,
    write_profile,
)

BENCH = "serve"
PROMPT = "Tell me a long story about a robot who learns to paint, with many details."
LOAD_PROMPTS = [f"Question number {i}: what should I cook tonight?" for i in range(64)]


def greedy_toml(n_tokens: int) -> str:
    return f"\n[generation]\ndo_sample = false\nmax_new_tokens = {n_tokens}\nseed = 0\n"


def in_process(lm, prompt: str, n_tokens: int) -> tuple[float, int]:
    from engine.runtime import GenerationParams

    params = GenerationParams.from_profile(lm.profile, max_new_tokens=n_tokens, do_sample=False)
    t0 = now()
    gen = lm.stream([{"role": "user", "content": prompt}], params)
    for _ in gen:
        pass
    return now() - t0, int(gen.record["completion_tokens"])


def served(client, prompt: str, n_tokens: int) -> tuple[float, int]:
    t0 = now()
    stream = client.chat.completions.create(
        model="base",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=n_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
    return now() - t0, int(usage.completion_tokens)


def last_reply_tokens_per_s(home, profile_name: str) -> float:
    """The server's own tokens/s for the reply it logged last (its generation record)."""
    import json

    lines = (home.feedback_dir(profile_name) / "events.jsonl").read_bytes().splitlines()
    return float(json.loads(lines[-1])["generation"]["tokens_per_s"])


def spread(xs: list[float]) -> str:
    return f"{min(xs):.2f}-{max(xs):.2f}"


def load_round(client, prompts: list[str], n_tokens: int, concurrency: int) -> tuple[float, list[float]]:
    """All ``prompts`` through the server, ``concurrency`` clients at once: (seconds, latencies)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(prompt: str) -> float:
        t0 = now()
        client.chat.completions.create(
            model="base", messages=[{"role": "user", "content": prompt}], max_tokens=n_tokens, temperature=0
        )
        return now() - t0

    t0 = now()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, prompts))
    return now() - t0, latencies


@contextmanager
def engine_serve(home, profile_name: str, max_waiting: int):
    """``engine serve`` in a subprocess; yields its /v1 URL."""
    from bench.common import REPO_ROOT

    env = dict(
        os.environ,
        TUNELOOP_HOME=str(home.root),
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    env.pop("TUNELOOP_API_KEY", None)
    cmd = [
        sys.executable,
        "-m",
        "engine",
        "serve",
        "--profile",
        profile_name,
        "--port",
        "0",
        "--adapter",
        "none",
        "--max-waiting",
        str(max_waiting),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:
            found = re.search(r"serving \S+ at (http://\S+/v1)", line)
            if found:
                yield found.group(1)
                break
        else:
            raise RuntimeError(f"engine serve exited ({proc.wait()}) without serving")
    finally:
        proc.terminate()
        proc.wait(60)


def measure(
    label: str,
    home,
    profile_name: str,
    model_id: str,
    n_tokens: int,
    reps: int,
    load_requests: int,
    load_tokens: int,
    concurrency: int,
    detail: str,
) -> tuple[list[Row], dict]:
    import openai

    from engine.profiles import load_profile
    from engine.runtime import load_model

    write_profile(home, profile_name, model_id, greedy_toml(n_tokens))
    lm = load_model(load_profile(profile_name, home), home, adapter=None)
    prompts = LOAD_PROMPTS[:load_requests]
    with engine_serve(home, profile_name, max(concurrency, 1)) as url:
        client = openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=600)
        in_process(lm, PROMPT, n_tokens)  # warm-up both paths
        served(client, PROMPT, n_tokens)
        tok = {"in_process": [], "serve": [], "server_side": []}
        counts = set()
        for rep in range(reps):
            for path in ("in_process", "serve") if rep % 2 == 0 else ("serve", "in_process"):
                t, k = in_process(lm, PROMPT, n_tokens) if path == "in_process" else served(client, PROMPT, n_tokens)
                tok[path].append(k / t)
                counts.add(k)
                if path == "serve":  # the same request as the server's own generation record saw it
                    tok["server_side"].append(last_reply_tokens_per_s(home, profile_name))
        if len(counts) != 1:
            raise RuntimeError(f"the paths produced different token counts {sorted(counts)}: not comparable")
        ratios = [s / p for s, p in zip(tok["serve"], tok["in_process"])]
        same_request = [c / s for c, s in zip(tok["serve"], tok["server_side"])]

        load = {"serve_rps": [], "in_process_rps": [], "latencies": []}
        for rep in range(max(reps // 2, 2)):
            for path in ("in_process", "serve") if rep % 2 == 0 else ("serve", "in_process"):
                if path == "serve":
                    secs, lat = load_round(client, prompts, load_tokens, concurrency)
                    load["serve_rps"].append(len(prompts) / secs)
                    load["latencies"] += lat
                else:
                    t0 = now()
                    for p in prompts:
                        in_process(lm, p, load_tokens)
                    load["in_process_rps"].append(len(prompts) / (now() - t0))
    rps_ratio = [s / p for s, p in zip(load["serve_rps"], load["in_process_rps"])]
    lat = load["latencies"]
    n = counts.pop()
    rows = [
        Row(
            BENCH,
            f"serve / in-process tokens/s ({label})",
            median(ratios),
            target=">= 0.9",
            unit="x",
            detail=f"{label}, {n} tokens streamed, median of {reps} (spread {spread(ratios)}); in-process "
            f"{median(tok['in_process']):.1f} tok/s, serve {median(tok['serve']):.1f} tok/s; {detail}",
        ),
        Row(
            BENCH,
            f"client / server-side tokens/s, same request ({label})",
            median(same_request),
            unit="x",
            detail="what HTTP + SSE + the openai client cost: tokens/s the client saw over the server's own "
            f"generation record for the same request (spread {spread(same_request)}), so machine noise cancels",
        ),
        Row(
            BENCH,
            f"requests/s under load ({label})",
            median(load["serve_rps"]),
            unit="req/s",
            detail=f"{len(prompts)} requests x {load_tokens} tokens, {concurrency} clients at once, "
            f"{len(load['serve_rps'])} rounds (spread {spread(load['serve_rps'])}); "
            f"{median(rps_ratio):.2f}x the same requests one after another in-process "
            f"({median(load['in_process_rps']):.2f} req/s)",
        ),
        Row(
            BENCH,
            f"latency p50 / p95 under load ({label})",
            percentile(lat, 95) * 1000,
            unit="ms",
            detail=f"p95 {percentile(lat, 95) * 1000:.0f} ms, p50 {percentile(lat, 50) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms over {len(lat)} requests (one reply at a time: a request "
            f"waits for up to {concurrency - 1} others)",
        ),
    ]
    return rows, {
        "label": label,
        "tokens": n,
        "tok_per_s": tok,
        "ratios": ratios,
        "same_request": same_request,
        "load": load,
    }


def run(quick: bool, layers: int) -> tuple[list[Row], dict]:
    threads = set_threads()
    reps = 3 if quick else 6
    rows: list[Row] = []
    note = (
        f"torch threads: {threads} in each process; engine serve runs in its own process on loopback, "
        "the openai client and the in-process model in this one; the 2 cores are shared with other work"
    )
    meta: dict = {"models": [], "notes": [note]}
    with temp_home() as home:
        r, m = measure(
            "demo model",
            home,
            "benchdemo",
            "builtin:demo",
            64 if quick else 192,
            reps,
            8 if quick else 24,
            16,
            4,
            "tiny model: per-token overhead dominates",
        )
        rows += r
        meta["models"].append(m)
        with tempfile.TemporaryDirectory(prefix="tuneloop-bench-qwen-") as tmp:
            path = build_random_model_dir(Path(tmp) / "qwen", QWEN25_05B, layers)
            r, m = measure(
                "Qwen2.5-0.5B shape",
                home,
                "benchqwen",
                str(path),
                16 if quick else 32,
                reps,
                4 if quick else 8,
                8,
                4,
                f"random weights, fp32 CPU, {describe_shape(QWEN25_05B, layers)}",
            )
            rows += r
            meta["models"].append(m)
    return rows, meta


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(
        __doc__.splitlines()[0],
        argv,
        extra=lambda p: p.add_argument(
            "--layers", type=int, default=4, help="layers of the Qwen2.5-0.5B-shaped model (24 = full; CPU default 4)"
        ),
    )
    rows, meta = run(args.quick, args.layers)
    return finish(BENCH, rows, args, meta)


if __name__ == "__main__":
    main()
