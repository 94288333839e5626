"""The PEFT -> GGUF LoRA converter on a tiny synthetic llama base and adapter (no model, no llama.cpp): tensor names
from gguf's name map, llama.cpp's shapes, alpha, the q/k row permutation, reuse while unchanged, one-sentence errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import UserError

N_HEAD, N_KV, DIM, FF, R = 4, 2, 8, 32, 2


def _base(path):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV)
    w.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])  # arrays the header reader skips
    w.add_array("tokenizer.ggml.token_type", [1, 1, 3])
    w.add_string("general.name", "tiny")
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((DIM, DIM), np.float32))
        w.add_tensor(f"blk.{i}.attn_k.weight", np.zeros((DIM * N_KV // N_HEAD, DIM), np.float32))
        w.add_tensor(f"blk.{i}.ffn_down.weight", np.zeros((DIM, FF), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _adapter(folder, seed=0, **cfg):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(2):
        for module, (out, inp) in {"self_attn.q_proj": (DIM, DIM), "self_attn.k_proj": (DIM * N_KV // N_HEAD, DIM),
                                   "mlp.down_proj": (DIM, FF)}.items():
            stem = f"base_model.model.model.layers.{i}.{module}"
            tensors[f"{stem}.lora_A.weight"] = rng.standard_normal((R, inp)).astype(np.float32)
            tensors[f"{stem}.lora_B.weight"] = rng.standard_normal((out, R)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": R, "lora_alpha": 4, "base_model_name_or_path": "pkg:x/base.gguf", **cfg}))
    return tensors


def test_names_shapes_alpha_and_the_qk_permutation(tmp_path):
    import gguf

    from engine.runtime.gguf_lora import ensure_gguf_lora, permute_rows

    base = _base(tmp_path / "base.gguf")
    src = _adapter(tmp_path / "run" / "adapter")
    out = ensure_gguf_lora(tmp_path / "run" / "adapter", base)
    assert out == tmp_path / "run" / "adapter.gguf"
    r = gguf.GGUFReader(out)
    assert r.fields["general.type"].contents() == "adapter" and r.fields["adapter.type"].contents() == "lora"
    assert r.fields["general.architecture"].contents() == "llama"
    assert r.fields["adapter.lora.alpha"].contents() == 4.0
    t = {x.name: x for x in r.tensors}
    assert set(t) == {f"blk.{i}.{n}.weight.lora_{ab}" for i in range(2) for n in ("attn_q", "attn_k", "ffn_down")
                      for ab in "ab"}
    # llama.cpp: lora_a ne = (in, rank), lora_b ne = (rank, out)
    assert list(t["blk.0.ffn_down.weight.lora_a"].shape) == [FF, R]
    assert list(t["blk.0.ffn_down.weight.lora_b"].shape) == [R, DIM]
    stem = "base_model.model.model.layers.1"
    np.testing.assert_array_equal(t["blk.1.ffn_down.weight.lora_b"].data, src[f"{stem}.mlp.down_proj.lora_B.weight"])
    np.testing.assert_array_equal(t["blk.1.attn_q.weight.lora_a"].data, src[f"{stem}.self_attn.q_proj.lora_A.weight"])
    np.testing.assert_array_equal(t["blk.1.attn_q.weight.lora_b"].data,
                                  permute_rows(src[f"{stem}.self_attn.q_proj.lora_B.weight"], N_HEAD))
    np.testing.assert_array_equal(t["blk.1.attn_k.weight.lora_b"].data,
                                  permute_rows(src[f"{stem}.self_attn.k_proj.lora_B.weight"], N_KV))
    # the permutation interleaves the two rotary halves of each head: rows 0..3 of a head go 0,2,1,3
    assert permute_rows(np.arange(8).reshape(8, 1), 2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_converted_once_and_again_when_the_adapter_changes(tmp_path):
    from engine.runtime.gguf_lora import ensure_gguf_lora

    base = _base(tmp_path / "base.gguf")
    folder = tmp_path / "run" / "adapter"
    _adapter(folder)
    out = ensure_gguf_lora(folder, base)
    first = out.stat().st_mtime_ns, out.stat().st_ino
    assert ensure_gguf_lora(folder, base) == out
    assert (out.stat().st_mtime_ns, out.stat().st_ino) == first  # reused
    _adapter(folder, seed=1)
    ensure_gguf_lora(folder, base)
    assert out.stat().st_ino != first[1]  # made again, by a rename
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_rslora_is_folded_into_lora_b(tmp_path):
    import gguf

    from engine.runtime.gguf_lora import ensure_gguf_lora

    base = _base(tmp_path / "base.gguf")
    src = _adapter(tmp_path / "a", use_rslora=True)
    t = {x.name: x for x in gguf.GGUFReader(ensure_gguf_lora(tmp_path / "a", base)).tensors}
    np.testing.assert_allclose(t["blk.0.ffn_down.weight.lora_b"].data,
                               src["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"] * np.sqrt(R), rtol=1e-6)


def test_a_damaged_or_foreign_adapter_is_one_sentence(tmp_path):
    from engine.runtime.gguf_lora import ensure_gguf_lora

    base = _base(tmp_path / "base.gguf")
    folder = tmp_path / "run" / "adapter"
    _adapter(folder)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(UserError) as err:
        ensure_gguf_lora(folder, base)
    assert "damaged" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run" / "adapter.gguf").exists()

    other = tmp_path / "other"
    _adapter(other)
    (other / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": R, "lora_alpha": 4, "use_dora": True}))
    with pytest.raises(UserError, match="DoRA"):
        ensure_gguf_lora(other, base)

    import gguf

    small = tmp_path / "small.gguf"
    w = gguf.GGUFWriter(str(small), "llama")
    w.add_block_count(2)
    w.add_head_count(N_HEAD)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((4, 4), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()  # noqa: E702
    _adapter(other)
    with pytest.raises(UserError) as err:
        ensure_gguf_lora(other, small)
    assert "does not fit small.gguf" in str(err.value) and "\n" not in str(err.value)


def test_the_header_reader_agrees_with_gguf(tmp_path):
    import gguf

    from engine.runtime.gguf_header import read_header

    base = _base(tmp_path / "base.gguf")
    kv, shapes = read_header(base)
    r = gguf.GGUFReader(base)
    assert shapes == {t.name: tuple(int(x) for x in t.shape) for t in r.tensors}
    assert kv["general.architecture"] == "llama" and kv["general.name"] == "tiny"
    assert kv["llama.attention.head_count"] == N_HEAD and kv["llama.block_count"] == 2
    assert "tokenizer.ggml.tokens" not in kv
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
    with pytest.raises(UserError, match="cannot read the base GGUF"):
        from engine.runtime.gguf_lora import read_base

        read_base(tmp_path / "bad.gguf")
