"""One demo model and one real uvicorn server (loopback, free port) per test module, with the real
``openai`` client. Each test gets its own feedback log profile state through the shared home."""

from __future__ import annotations

import pytest

from engine.home import Home
from tests.conftest import install_demo_model

API_KEY = "test-key-123"


def make_lora(home: Home, profile: str, run_id: str, seed: int = 0):
    """A finished, non-trivial LoRA adapter for the demo model at runs/<profile>/<run_id>/adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.safe_files import ensure_dir

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(str(home.demo_model_dir), use_safetensors=True)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    )
    peft_model.peft_config["default"].base_model_name_or_path = "builtin:demo"
    out = ensure_dir(home.run_dir(profile, run_id)) / "adapter"
    peft_model.save_pretrained(str(out), save_embedding_layers=False)
    return out


@pytest.fixture(scope="module")
def serve_home(tmp_path_factory, demo_model_dir) -> Home:
    return install_demo_model(Home.resolve(tmp_path_factory.mktemp("serve") / "home"), demo_model_dir)


@pytest.fixture(scope="module")
def demo_lm(serve_home):
    from engine.profiles import load_profile
    from engine.runtime import load_model

    return load_model(load_profile("demo", serve_home), serve_home, adapter="base")


def start_server(home, lm, **options):
    """(BackgroundServer, state) on loopback; use as a context manager."""
    from engine.serve.app import create_app
    from engine.serve.server import BackgroundServer, build_state

    state = build_state(lm.profile, home, lm, **options)
    return BackgroundServer(create_app(state)), state


@pytest.fixture(scope="module")
def server(serve_home, demo_lm):
    srv, state = start_server(serve_home, demo_lm, adapter="promoted")
    with srv:
        srv.state = state
        yield srv


@pytest.fixture
def client(server):
    import openai

    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60)
