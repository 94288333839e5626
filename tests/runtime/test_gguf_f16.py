"""The GGUF llama.cpp runs (engine/runtime/gguf_f16.py): a quantized file is de-quantized once into home/models
(llama.cpp's Q4_1 kernels answer differently from the weights tuneloop trains and gates), made again only when
the source changes; an f16/f32 file is run as it is."""

from __future__ import annotations

import numpy as np

from engine.runtime.gguf_f16 import runnable_base


def _base(path, file_type: int, value: float = 0.0):
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_file_type(file_type)
    w.add_string("general.name", "tiny")
    w.add_tensor("blk.0.attn_q.weight", np.full((4, 4), value, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_quantized_file_is_run_from_its_f16_copy_made_once(home, tmp_path):
    import gguf

    home.ensure()
    source = _base(tmp_path / "tiny.Q4_1.gguf", file_type=3)  # general.file_type 3: mostly Q4_1
    said = []
    copy = runnable_base(home, source, lambda text, _: said.append(text))
    assert copy.parent == home.models_dir and copy.name == "tiny.Q4_1.f16.gguf" and said
    reader = gguf.GGUFReader(str(copy))
    assert reader.get_tensor(0).tensor_type == gguf.GGMLQuantizationType.F16
    made = copy.stat().st_mtime_ns
    said.clear()
    assert runnable_base(home, source, lambda text, _: said.append(text)) == copy and not said  # reused
    assert copy.stat().st_mtime_ns == made
    _base(source, file_type=3, value=1.0)  # a new version of the source file
    assert runnable_base(home, source) == copy and copy.stat().st_mtime_ns != made
    assert float(np.asarray(gguf.GGUFReader(str(copy)).get_tensor(0).data).max()) == 1.0


def test_an_f16_or_f32_file_is_run_as_it_is(home, tmp_path):
    home.ensure()
    for file_type in (0, 1):
        source = _base(tmp_path / f"tiny-{file_type}.gguf", file_type=file_type)
        assert runnable_base(home, source) == source
    assert not home.models_dir.exists() or not any(home.models_dir.iterdir())
