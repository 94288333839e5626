"""A home with a profile ``tiny`` whose model.id is a tiny synthetic llama GGUF, and one run with a LoRA adapter for it."""

from __future__ import annotations

import pytest

from tests.runtime.test_gguf_lora import _adapter, _base

RUN = "20260101-000000-sft"


@pytest.fixture
def gguf_home(home, tmp_path):
    base = _base(tmp_path / "tiny.gguf")
    home.ensure()
    home.profiles_dir.mkdir(parents=True, exist_ok=True)
    (home.profiles_dir / "tiny.toml").write_text(f'system_prompt = "Be brief."\n[model]\nid = "{base}"\n')
    _adapter(home.run_dir("tiny", RUN) / "adapter", base_model_name_or_path=str(base))
    return home, base
