"""``engine export-model``: the merged folder loads with plain transformers and answers like base + adapter."""

from __future__ import annotations

import pytest

from tests.engine_cli import run_engine
from tests.serve.conftest import make_lora

RUN = "20260102-000000-sft"
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def plain_greedy(folder, n=20) -> str:
    """Greedy reply from a folder with transformers alone (no peft, no tuneloop)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_exported_model_equals_base_plus_adapter(demo_home, tmp_path):
    from engine.profiles import load_profile
    from engine.runtime import GenerationParams, load_model

    make_lora(demo_home, "demo", RUN, seed=5)
    out = tmp_path / "exported"
    code, text = run_engine("export-model", "--profile", "demo", "--adapter", RUN, "--out", str(out))
    assert code == 0, text
    assert f"with adapter {RUN} merged" in text and f"vllm serve {out}" in text and f"FROM {out}" in text
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tuneloop_export.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) or n.startswith("adapter_") for n in names)
    assert any("chat_template" in n for n in names) or "chat_template" in (out / "tokenizer_config.json").read_text()

    lm = load_model(load_profile("demo", demo_home), demo_home, adapter=RUN)
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=20, do_sample=False)
    tuned, _ = lm.generate(PROMPT, params, system_prompt="")
    lm.use_adapter(None)
    base, _ = lm.generate(PROMPT, params, system_prompt="")
    exported = plain_greedy(out)
    assert exported == tuned and exported != base


def test_export_refuses_a_folder_that_is_not_empty(demo_home, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    code, text = run_engine("export-model", "--profile", "demo", "--out", str(tmp_path / "taken"))
    assert code == 2 and "already exists and is not an empty folder" in text and text.count("\n") == 1


def test_export_refuses_an_unknown_adapter(demo_home, tmp_path):
    code, text = run_engine("export-model", "--profile", "demo", "--adapter", "nope", "--out", str(tmp_path / "o"))
    assert code == 2 and "has no finished adapter" in text and not (tmp_path / "o").exists()
