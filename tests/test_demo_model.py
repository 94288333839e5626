"""The offline demo model: deterministic build, loadable by plain transformers offline, and a chat
template that TRL's assistant-only loss can use."""

from __future__ import annotations

import os
import stat

import pytest

from engine.demo import build_demo_model, ensure_demo_model, is_built


def test_building_twice_gives_byte_identical_files(demo_model_dir, tmp_path):
    again = build_demo_model(tmp_path / "again")
    names = sorted(p.name for p in demo_model_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(names)
    for name in names:
        assert (demo_model_dir / name).read_bytes() == (again / name).read_bytes(), name


def test_transformers_loads_it_offline_as_a_tiny_llama(demo_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir, use_safetensors=True)
    assert model.config.model_type == "llama"
    params = sum(p.numel() for p in model.parameters())
    assert 50_000 < params < 1_000_000
    assert 512 <= len(tok) <= 2048 and model.config.vocab_size == len(tok)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None and tok.pad_token_id != tok.eos_token_id
    assert "<|im_start|>" in tok.all_special_tokens
    # the custom byte-level pre-tokenizer survived the AutoTokenizer round trip: any text comes back
    text = "Hello, wörld! def f(x):\n    return x ** 2  # 日本語 🙂"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert len(tok(text)["input_ids"]) < len(text.encode())  # BPE merges, not one token per byte


def test_chat_template_marks_exactly_the_assistant_reply(demo_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    out = tok.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert sum(mask) > 0
    marked = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(marked) == "Paris.<|im_end|>"
    prompt = tok.apply_chat_template(chat[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    assert prompt.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_ensure_builds_once_into_home_and_force_rebuilds(home):
    assert not is_built(home.demo_model_dir)
    path = ensure_demo_model(home)
    assert path == home.demo_model_dir and is_built(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "model.safetensors").stat().st_mode) == 0o600
    inode = (path / "model.safetensors").stat().st_ino
    ensure_demo_model(home)
    assert (path / "model.safetensors").stat().st_ino == inode  # not rebuilt
    ensure_demo_model(home, force=True)
    assert (path / "model.safetensors").stat().st_ino != inode
    leftovers = [p.name for p in home.models_dir.iterdir() if p.name not in ("demo", ".demo.lock")]
    assert leftovers == []  # no temp or .old folders left behind


def test_a_failed_build_leaves_no_half_written_model(home, monkeypatch):
    import engine.demo.build as build

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_make_model", broken)
    with pytest.raises(RuntimeError):
        ensure_demo_model(home)
    assert not home.demo_model_dir.exists()
    assert [p.name for p in home.models_dir.iterdir() if p.name != ".demo.lock"] == []
