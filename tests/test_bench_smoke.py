"""The benchmarks stay runnable: every module imports, and the cheapest one runs end to end.

No timing is asserted (benchmarks are scripts, not tests); the feedback-log benchmark runs with
--quick and must write a JSON table whose rows carry real numbers next to their targets.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["common", "decode", "long_reply", "ui_latency", "startup", "train_throughput", "feedback_log",
           "gpu", "run_all", "fake_generator", "tui_harness", "learning", "learning_data", "learning_recipe_probe",
           "serve", "llamacpp_speed", "gguf_lora_agreement"]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_bench_module_imports_without_torch(name):
    """Importing a benchmark is cheap: heavy libraries load only when it runs."""
    code = (f"import sys; import bench.{name}; "
            "heavy = [m for m in ('torch', 'transformers', 'trl') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"bench.{name} imported {out.stdout.strip()} at import time"


@pytest.mark.slow
def test_feedback_log_bench_quick_writes_a_table(tmp_path):
    out = tmp_path / "fl.json"
    proc = subprocess.run([sys.executable, "-m", "bench.feedback_log", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "append p99" in proc.stdout and "target" in proc.stdout
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["append p50"]["value"] > 0
    growth = [r for name, r in rows.items() if "growth" in name]
    assert len(growth) == 3
    assert all(r["value"] > 0 and r["target"] == "<= 12" and r["status"] in ("met", "MISSED") for r in growth)
    assert data["machine"]


@pytest.mark.slow
def test_gpu_bench_skips_cleanly_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the GPU benchmark would really run")
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped: no CUDA" in proc.stdout
    row = json.loads(out.read_text())["rows"][0]
    assert row["value"] is None and row["status"] == "not measured"


def test_run_all_rejects_an_unknown_benchmark():
    proc = subprocess.run([sys.executable, "bench/run_all.py", "--only", "nonsense"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown benchmark" in proc.stderr


def test_module_list_matches_run_all():
    run_all = importlib.import_module("bench.run_all")
    for name in run_all.BENCHES:
        assert (ROOT / "bench" / f"{name}.py").is_file()


def test_learning_data_has_the_sizes_and_checkers_the_issue_asks_for():
    from bench import learning_data as d

    assert len(d.FACTS) == 20 and len(d.CONTROLS) == 30 and len(d.STYLE_TRAIN) == 40 and len(d.STYLE_HELD_OUT) == 30
    assert all(f.ok(f.answer) and not f.ok(f.question) and not f.ok(f.paraphrase) for f in d.FACTS)
    taught = {f.question for f in d.FACTS} | {q for q, _ in d.STYLE_TRAIN}
    assert not taught & ({f.paraphrase for f in d.FACTS} | set(d.STYLE_HELD_OUT) | {c.prompt for c in d.CONTROLS})
    assert all(d.style_ok(a) and not d.style_ok(d.rejected_reply(a, i)) for i, (_, a) in enumerate(d.STYLE_TRAIN))
    assert not d.style_ok("Great question! Paris.") and not d.style_ok("One. Two. Three.")
    train, held = d.reward_pairs()
    assert len(held) >= 100 and len(train) >= 100
    assert not {str(r["prompt"]) for r in train} & {str(r["prompt"]) for r in held}
    assert d.CONTROLS[0].ok("The capital of France is Paris.") and not d.CONTROLS[0].ok("It is Marquessa.")


def test_decode_llama_cpp_anchor_says_when_it_is_not_installed(monkeypatch):
    """llama.cpp is an optional anchor, never a dependency: without it the row says so."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now raises ImportError
    from bench import decode

    rows, meta = decode.llama_cpp_anchor(None, "unused", 1, 1)
    assert len(rows) == 1 and rows[0].value is None and meta == {}
    assert "not installed" in rows[0].missing and rows[0].status == "not measured"


def test_critique_bench_accepts_a_short_revision_only_if_it_still_answers():
    from bench.learning_data import STYLE_TRAIN, keeps_answer

    question, answer = STYLE_TRAIN[0]  # "Why is the sky blue?"
    assert keeps_answer(question, answer, "Blue light is scattered more by the air.")  # "scattered" meets "scatters"
    assert not keeps_answer(question, answer, "The sky is blue.")  # only the question's own words
    assert not keeps_answer(question, answer, "I'm ready to assist. What can I help you with today?")
    assert all(keeps_answer(q, a, a) for q, a in STYLE_TRAIN)  # every reference answer has words of its own
