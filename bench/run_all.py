"""Run every benchmark, each in its own process, and print one table of ratios beside their targets.

    python bench/run_all.py [--quick] [--json OUT] [--only decode,startup,...]

Each benchmark runs as ``python -m bench.<name> --json <tmp>`` (a fresh process: startup needs a
clean import state, training needs its own peak memory); a benchmark that fails shows up as a
"not measured" row with its exit code instead of stopping the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Row, format_table, machine_description, not_measured, read_json_rows  # noqa: E402

BENCHES = ["feedback_log", "startup", "long_reply", "ui_latency", "decode", "serve", "train_throughput", "reward_speed", "gpu",
           "llamacpp_speed", "chat_sampling", "learning"]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes")
    parser.add_argument("--json", metavar="OUT", help="write every result to this JSON file")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHES)})")

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    rows: list[Row] = []
    timings: dict[str, float] = {}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tuneloop-bench-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, "-m", f"bench.{name}", "--json", str(out)] + (["--quick"] if args.quick else [])
            print(f"--- {name}: {' '.join(cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, env=env)
            timings[name] = time.perf_counter() - t0
            if out.is_file():
                got, data = read_json_rows(out)
                rows += got
                results[name] = data
            else:
                rows.append(not_measured(name, "(whole benchmark)", f"exited {proc.returncode} without results"))
    print()
    print(format_table(rows, title=f"== all benchmarks ({machine_description()})"))
    print("  time per benchmark: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_description(), "timings_s": timings,
                                               "results": results}, indent=2) + "\n", encoding="utf-8")
        print(f"  wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
