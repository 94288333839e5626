"""``engine export-model --format gguf|gguf-lora`` on a tiny synthetic llama GGUF (no model, no llama.cpp): the merged
file holds base + alpha/r * B@A in the base's (permuted) layout with the base's metadata, the LoRA file is the
converter's, each prints how to load it, and what cannot be exported is one sentence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engine_cli import run_engine
from tests.runtime.test_gguf_lora import DIM, N_HEAD


def _export(home, *args):
    return run_engine("export-model", "--profile", "tiny", "--adapter", "20260101-000000-sft", "--home",
                      str(home.root), *args)


def test_merged_gguf_holds_base_plus_the_scaled_permuted_update(gguf_home, tmp_path):
    import gguf
    from safetensors.numpy import load_file

    from engine.runtime.gguf_lora import permute_rows

    home, base = gguf_home
    code, out = _export(home, "--format", "gguf", "--out", str(tmp_path / "m.gguf"))
    assert code == 0, out
    assert f"FROM {tmp_path / 'm.gguf'}" in out and "llama-server -m" in out and "lms import" in out
    r = gguf.GGUFReader(tmp_path / "m.gguf")
    assert r.fields["llama.attention.head_count"].contents() == N_HEAD
    assert r.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16
    t = {x.name: x for x in r.tensors}
    src = load_file(str(home.run_dir("tiny", "20260101-000000-sft") / "adapter" / "adapter_model.safetensors"))
    stem = "base_model.model.model.layers.0.self_attn.q_proj"
    want = 2.0 * permute_rows(src[f"{stem}.lora_B.weight"], N_HEAD) @ src[f"{stem}.lora_A.weight"]  # base is zero
    assert t["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    np.testing.assert_allclose(np.asarray(t["blk.0.attn_q.weight"].data, np.float32).reshape(DIM, DIM), want, atol=1e-2)

    code, out = _export(home, "--format", "gguf", "--dtype", "q8_0", "--out", str(tmp_path / "q.gguf"))
    assert code == 0, out
    q = {x.name: x for x in gguf.GGUFReader(tmp_path / "q.gguf").tensors}
    assert q["blk.0.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0  # rows of 32: one block each
    assert q["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16  # 8-value rows stay f16


def test_gguf_lora_export_and_how_to_load_it(gguf_home, tmp_path):
    import gguf

    home, base = gguf_home
    code, out = _export(home, "--format", "gguf-lora", "--out", str(tmp_path / "sub" / "a.gguf"))
    assert code == 0, out
    lora = tmp_path / "sub" / "a.gguf"
    assert f"FROM {base}\n" in out and f"ADAPTER {lora}\n" in out and 'SYSTEM """Be brief."""' in out
    assert f"llama-server -m {base} --lora {lora}" in out
    assert gguf.GGUFReader(tmp_path / "sub" / "a.gguf").fields["adapter.type"].contents() == "lora"


@pytest.mark.parametrize("args, words", [
    (("--format", "gguf", "--out", "x.bin"), "must name the .gguf file"),
    (("--format", "gguf", "--dtype", "q4", "--out", "x.gguf"), "--dtype 'q4' is not one of"),
    (("--format", "onnx", "--out", "x.gguf"), "--format 'onnx' is not one of"),
])
def test_bad_options_are_one_sentence(gguf_home, tmp_path, args, words):
    home, _ = gguf_home
    code, out = _export(home, *args)
    assert code == 2 and words in out and "Traceback" not in out, out


def test_what_cannot_be_exported_is_one_sentence(gguf_home, tmp_path):
    home, _ = gguf_home
    code, out = run_engine("export-model", "--profile", "demo", "--format", "gguf", "--out", str(tmp_path / "d.gguf"),
                           "--home", str(home.root))
    assert code == 2 and "needs a profile whose model.id is a GGUF file" in out, out
    code, out = run_engine("export-model", "--profile", "tiny", "--adapter", "base", "--format", "gguf-lora",
                           "--out", str(tmp_path / "b.gguf"), "--home", str(home.root))
    assert code == 2 and "no adapter to export" in out, out
    (tmp_path / "e.gguf").write_bytes(b"")
    code, out = _export(home, "--format", "gguf", "--out", str(tmp_path / "e.gguf"))
    assert code == 2 and "already exists" in out, out
