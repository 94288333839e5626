"""The GGUF LoRA is made when a run is chosen (``engine adapters use``, and after a promotion through
``convert_chosen``), only for a GGUF base, and a failure is one line that changes nothing else."""

from __future__ import annotations

import json

from tests.engine_cli import run_engine
from tests.runtime.conftest import RUN


def test_adapters_use_converts_the_run_for_llama_cpp(gguf_home):
    home, _ = gguf_home
    code, out = run_engine("adapters", "use", RUN, "--profile", "tiny", "--home", str(home.root))
    assert code == 0, out
    lora = home.run_dir("tiny", RUN) / "adapter.gguf"
    assert f"llama.cpp LoRA: {lora}" in out and lora.is_file()


def test_a_failed_conversion_is_one_line_and_the_choice_stands(gguf_home):
    from engine.adapters import promoted_run
    from engine.profiles import load_profile
    from engine.runtime.gguf_lora import convert_chosen

    home, _ = gguf_home
    cfg = home.run_dir("tiny", RUN) / "adapter" / "adapter_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "use_dora": True}))
    code, out = run_engine("adapters", "use", RUN, "--profile", "tiny", "--home", str(home.root))
    assert code == 0 and promoted_run(home, "tiny") == RUN, out
    assert "the adapter was not converted for llama.cpp:" in out and "DoRA" in out and "Traceback" not in out
    assert not (home.run_dir("tiny", RUN) / "adapter.gguf").exists()
    assert convert_chosen(home, load_profile("demo", home), RUN) is None  # not a GGUF base: nothing to do
    assert convert_chosen(home, load_profile("tiny", home), None) is None
