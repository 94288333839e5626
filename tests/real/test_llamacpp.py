"""``backend = "llamacpp"`` on the real SmolLM2 GGUF file: replies stream and stop within a token, honour the
generation settings, name their backend, never import torch, serve ``engine serve`` and best-of-n, and fall back
to transformers with one line when llama_cpp cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from engine.home import Home
from engine.profiles import load_profile
from engine.runtime.backend import llamacpp_installed
from tests.conftest import add_user_profile
from tests.real.conftest import MODEL_ID, PROFILE, requires_model

pytestmark = [requires_model, pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(not llamacpp_installed(), reason="llama-cpp-python is not installed (the README's commands install it)")]

QUESTION = [{"role": "user", "content": "In which city is the Eiffel Tower?"}]


@pytest.fixture(scope="module")
def llama_home(tmp_path_factory) -> Home:
    return Home.resolve(tmp_path_factory.mktemp("llamacpp") / "home").ensure()


@pytest.fixture(scope="module")
def lm(llama_home):
    from engine.runtime import load_chat_model

    model = load_chat_model(load_profile(PROFILE, llama_home), llama_home, adapter="base")
    assert model.backend == "llamacpp" and model.note is None
    return model


def _params(lm, **kw):
    from engine.runtime import GenerationParams

    return GenerationParams.from_profile(lm.profile, **kw)


def test_a_greedy_reply_streams_in_pieces_and_records_its_backend(lm):
    gen = lm.stream(QUESTION, _params(lm, do_sample=False, max_new_tokens=40))
    pieces = list(gen)
    text = "".join(pieces)
    assert "Paris" in text and len(pieces) >= 2
    rec = gen.record
    assert rec["backend"] == "llamacpp" and rec["model"] == MODEL_ID and rec["adapter"] is None
    assert rec["finish_reason"] in ("stop", "length") and rec["stopped"] is False
    assert rec["completion_tokens"] > 3 and rec["prompt_tokens"] > 10 and rec["tokens_per_s"] > 0
    again, _ = lm.generate(QUESTION, _params(lm, do_sample=False, max_new_tokens=40))
    assert again == text  # greedy is deterministic, also when the KV cache of the last reply is reused


def test_cancel_stops_within_a_token(lm):
    gen = lm.stream([{"role": "user", "content": "Write a long story about a dragon."}],
                    _params(lm, do_sample=False, max_new_tokens=400))
    for _piece in gen:
        gen.cancel()
        count = gen._streamer.count
    rec = gen.record
    assert rec["stopped"] is True and rec["finish_reason"] == "cancelled"
    assert rec["completion_tokens"] <= count + 1  # at most the token being decoded when Esc came


def test_the_generation_settings_are_honoured(lm):
    _, rec = lm.generate([{"role": "user", "content": "Count from one to a hundred in words."}],
                         _params(lm, do_sample=False, max_new_tokens=7))
    assert rec["completion_tokens"] == 7 and rec["finish_reason"] == "length"
    sampled = _params(lm, do_sample=True, temperature=1.5, top_p=1.0, max_new_tokens=24)
    a, ra = lm.generate(QUESTION, sampled.replace(seed=11))
    b, _ = lm.generate(QUESTION, sampled.replace(seed=11))
    c, _ = lm.generate(QUESTION, sampled.replace(seed=12))
    assert a == b and a != c and ra["seed"] == 11 and ra["params"]["temperature"] == 1.5
    _, rp = lm.generate(QUESTION, _params(lm, do_sample=False, repetition_penalty=1.3, max_new_tokens=8))
    assert rp["params"]["repetition_penalty"] == 1.3


def test_best_of_n_samples_through_llamacpp(lm):
    from engine.reward.best_of import best_of_n

    class LengthScorer:
        run_id = "length"

        def score_many(self, pairs):
            return [float(len(reply)) for _, reply in pairs]

        def calibrate(self, raw):
            return raw / 100

    out = best_of_n(lm, LengthScorer(), QUESTION, 3, _params(lm, max_new_tokens=16, seed=5))
    assert len(out) == 3 and out[0].score >= out[-1].score
    assert {c.record["backend"] for c in out} == {"llamacpp"} and len({c.seed for c in out}) == 3


def test_engine_serve_answers_through_llamacpp(lm, llama_home):
    from openai import OpenAI

    from engine.serve.app import create_app
    from engine.serve.server import BackgroundServer, build_state

    state = build_state(lm.profile, llama_home, lm, adapter="base")
    assert state.model_limits.context == lm.context_length
    with BackgroundServer(create_app(state)) as server:
        client = OpenAI(base_url=server.url, api_key="none")
        reply = client.chat.completions.create(model="base", messages=QUESTION, max_tokens=20, temperature=0)
        assert "Paris" in reply.choices[0].message.content
        chunks = list(client.chat.completions.create(model="base", messages=QUESTION, max_tokens=20, temperature=0,
                                                     stream=True))
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert streamed == reply.choices[0].message.content
    served = [e for e in state.recorder.log.read().events if e.get("role") == "assistant"]
    assert served[-1]["generation"]["backend"] == "llamacpp" and served[-1]["generation"]["source"] == "serve"


def _child(code: str, home: Home, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TUNELOOP_HOME": str(home.root), **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_llamacpp_profile_replies_without_importing_torch(llama_home):
    result = _child(f"""
        import json, sys
        from engine.home import Home
        from engine.profiles import load_profile
        from engine.runtime import load_chat_model
        home = Home.resolve({str(llama_home.root)!r})
        lm = load_chat_model(load_profile({PROFILE!r}, home), home)
        text, record = lm.generate([{{"role": "user", "content": "Hi"}}])
        print(json.dumps({{"backend": record["backend"], "text": bool(text),
                          "heavy": [m for m in ("torch", "transformers") if m in sys.modules]}}))
    """, llama_home)
    assert result == {"backend": "llamacpp", "text": True, "heavy": []}


def test_without_llama_cpp_the_profile_falls_back_to_transformers_with_one_line(smol_home):
    """`import llama_cpp` made to fail: engine generate says so in one line and the reply is transformers'."""
    add_user_profile(smol_home, "smol", f'[model]\nid = "{MODEL_ID}"\ndtype = "fp32"\nbackend = "llamacpp"\n')
    result = _child("""
        import contextlib, io, json, sys
        sys.modules["llama_cpp"] = None
        from engine.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                main(["generate", "--profile", "smol", "--greedy", "--max-new-tokens", "8", "--record", "Hi"])
            except SystemExit as exc:
                assert not exc.code, err.getvalue()
        print(json.dumps({"stderr": err.getvalue()}))
    """, smol_home)
    notes = [line for line in result["stderr"].splitlines() if "llama-cpp-python" in line]
    assert len(notes) == 1 and "transformers" in notes[0]
    events = [json.loads(x) for x in (smol_home.feedback_dir("smol") / "events.jsonl").read_text().splitlines()]
    assert events[-1]["generation"]["backend"] == "transformers"


async def test_the_chat_app_replies_through_llamacpp(llama_home):
    from tests.tui.helpers import events, send, wait_idle
    from tui.app import create_app

    app = create_app(llama_home, PROFILE)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        await send(pilot, "What is the capital of France?")
        await wait_idle(pilot, app, timeout=300)
    reply = events(llama_home, PROFILE, type_="message")[-1]  # the home's log also holds the serve test's exchange
    assert reply["role"] == "assistant" and "source" not in reply
    assert reply["generation"]["backend"] == "llamacpp" and reply["content"].strip()


@pytest.fixture(scope="module")
def two_adapters(llama_home, tmp_path_factory):
    """Two finished runs of the SmolLM2 profile whose LoRA (r 8, all-linear, random B) changes greedy answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.runtime.gguf import ensure_converted
    from engine.safe_files import ensure_dir

    folder = ensure_converted(MODEL_ID, Home.resolve(tmp_path_factory.mktemp("convert") / "home"))
    runs = []
    for seed, run_id in ((1, "20260101-000000-sft"), (2, "20260102-000000-sft")):
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.03)
        peft_model.peft_config["default"].base_model_name_or_path = MODEL_ID
        out = ensure_dir(llama_home.run_dir(PROFILE, run_id)) / "adapter"
        peft_model.save_pretrained(str(out))
        runs.append((run_id, out))
    return runs


def test_adapters_hot_swap_without_reloading_the_model(lm, two_adapters):
    """A/B, F4 and serve switch adapters per reply: the same Llama, a switch on its context, and base again after."""
    import time

    (first, first_dir), (second, second_dir) = two_adapters
    params = _params(lm, do_sample=False, max_new_tokens=24)
    llama = lm.llama
    haiku = [{"role": "user", "content": "Write a haiku about the sea."}]  # an answer small LoRAs do change
    base, _ = lm.generate(haiku, params)
    t0 = time.perf_counter()
    lm.load_adapter(first, first_dir)  # converted once (gguf_lora) and loaded beside the model
    lm.load_adapter(second, second_dir)
    loaded_s = time.perf_counter() - t0
    replies = {}
    for run_id in (first, second, None, first):
        lm.use_adapter(run_id)
        text, record = lm.generate(haiku, params)
        assert record["adapter"] == run_id
        replies.setdefault(run_id, text)
        assert replies[run_id] == text  # switching back gives the same reply: nothing of the other one lingers
    assert replies[None] == base and len({base, replies[first], replies[second]}) == 3
    assert lm.llama is llama and set(lm.adapters) == {first, second}
    assert first_dir.with_name(first_dir.name + ".gguf").is_file()  # gguf_lora's file, beside the adapter
    t0 = time.perf_counter()
    lm.load_adapter(first, first_dir)  # already loaded: nothing to do
    assert time.perf_counter() - t0 < loaded_s
    lm.unload_adapter(second)
    lm.use_adapter(None)


async def test_the_app_says_in_one_line_that_it_fell_back_to_transformers(smol_home, monkeypatch):
    from tests.tui.helpers import events, send, wait_for, wait_idle
    from tui.app import create_app

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    app = create_app(smol_home, PROFILE)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=300)
        await wait_for(pilot, lambda: any("llama-cpp-python" in n.message for n in app._notifications), 10,
                       "the fallback notice")
        notes = [n.message for n in app._notifications if "llama-cpp-python" in n.message]
        assert len(notes) == 1 and len(notes[0].splitlines()) == 1 and "transformers" in notes[0]
        await send(pilot, "Hi")
        await wait_idle(pilot, app, timeout=300)
    assert events(smol_home, PROFILE, type_="message")[-1]["generation"]["backend"] == "transformers"


async def test_blind_a_b_of_base_and_the_promoted_adapter_in_the_app(two_adapters, tmp_path):
    """The app starts on the promoted adapter through llama.cpp and `a` compares it with the base model, switching
    adapters per reply on the one model and back."""
    import shutil

    from engine.adapters import set_promoted
    from tests.tui.helpers import events, send, wait_for, wait_idle
    from tui.app import create_app
    from tui.screens.compare import CompareScreen

    home = Home.resolve(tmp_path / "home").ensure()
    run_id, adapter = two_adapters[0]
    run = home.run_dir(PROFILE, run_id)
    shutil.copytree(adapter, run / "adapter")
    (run / "report.json").write_text(json.dumps({"run_id": run_id, "method": "sft", "promoted": True}))
    set_promoted(home, PROFILE, run_id)
    app = create_app(home, PROFILE)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app, timeout=120)
        assert app.lm.backend == "llamacpp" and app.lm.adapter == run_id
        await send(pilot, "Write a haiku about the sea.")
        await wait_idle(pilot, app, timeout=300)
        await pilot.press("ctrl+up", "a")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.ready, 300, "both replies")
        await pilot.press("1")
        await pilot.pause()
        assert app.lm.adapter == run_id, "compare must restore the adapter in use"
    (choice,) = events(home, PROFILE, type_="choice")
    assert sorted(choice["sources"].values()) == sorted([run_id, "base"])
    gens = {e["id"]: e["generation"] for e in events(home, PROFILE, type_="message") if e["role"] == "assistant"}
    for mid, label in choice["sources"].items():
        assert gens[mid]["adapter"] == (None if label == "base" else label) and gens[mid]["backend"] == "llamacpp"


@pytest.fixture(scope="module")
def reference(llama_home):
    """The same profile's model through transformers: the weights training and the gate use."""
    from engine.runtime import load_model

    return load_model(load_profile(PROFILE, llama_home), llama_home, adapter="base", backend="transformers")


@requires_model
def test_llamacpp_answers_as_the_weights_tuneloop_trains_and_gates(lm, llama_home, reference):
    """llama.cpp runs the de-quantized f16 copy (engine/runtime/gguf_f16.py), so its greedy replies are the
    transformers path's: on the Q4_1 file itself "What is the capital of France?" began "L'Étoile, ..."."""
    assert lm.path.parent == llama_home.models_dir and lm.path.name.endswith(".f16.gguf")
    for question in ("What is the capital of France?", "What is the capital of Peru?", "How many legs does a spider have?"):
        messages = [{"role": "user", "content": question}]
        ours, _ = lm.generate(messages, _params(lm, do_sample=False, max_new_tokens=24))
        theirs, _ = reference.generate(messages, _params(lm, do_sample=False, max_new_tokens=24))
        assert ours.strip() == theirs.strip(), (question, ours, theirs)
    assert "Paris" in lm.generate([{"role": "user", "content": "What is the capital of France?"}],
                                  _params(lm, do_sample=False, max_new_tokens=24))[0]


def _controlled(model, messages=QUESTION, tokens=8, **controls):
    from engine.runtime.token_controls import TokenControls

    gen = model.stream(messages, _params(model, do_sample=False, max_new_tokens=tokens), controls=TokenControls(**controls))
    text = gen.wait()
    return text, gen.logprobs.entries if gen.logprobs is not None else []


def test_serve_controls_on_llamacpp_match_the_transformers_path(lm, reference):
    """engine serve's logprobs, top_logprobs, logit_bias and penalties through llama.cpp give what the transformers
    backend gives on the same weights (f16 there, fp32 here: log probabilities within 0.1 nats)."""
    ours_text, ours = _controlled(lm, logprobs=True, top_logprobs=5)
    theirs_text, theirs = _controlled(reference, logprobs=True, top_logprobs=5)
    assert ours_text == theirs_text and [e["token"] for e in ours] == [e["token"] for e in theirs]
    assert b"".join(bytes(e["bytes"]) for e in ours).decode() == ours_text
    for a, b in zip(ours, theirs):
        assert abs(a["logprob"] - b["logprob"]) < 0.1, (a, b)
        assert a["top_logprobs"][0]["token"] == a["token"] and a["logprob"] == a["top_logprobs"][0]["logprob"]
        assert len({t["token"] for t in a["top_logprobs"]} & {t["token"] for t in b["top_logprobs"]}) >= 4
    first = lm.llama.tokenize(ours[0]["token"].encode(), add_bos=False, special=False)
    banned_text, banned = _controlled(lm, logprobs=True, logit_bias={first[0]: -100.0})
    assert banned[0]["token"] != ours[0]["token"]  # logprobs are before the bias: the banned token was likeliest
    assert banned_text == _controlled(reference, logit_bias={first[0]: -100.0})[0]
    count = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    plain = _controlled(lm, count, 24)[0]
    penalised = _controlled(lm, count, 24, frequency_penalty=3.0, presence_penalty=3.0)[0]
    assert penalised != plain and penalised == _controlled(reference, count, 24, frequency_penalty=3.0,
                                                           presence_penalty=3.0)[0], (plain, penalised)


def test_engine_serve_gives_logprobs_through_llamacpp(lm, llama_home):
    from openai import OpenAI

    from engine.serve.app import create_app
    from engine.serve.server import BackgroundServer, build_state

    state = build_state(lm.profile, llama_home, lm, adapter="base")
    with BackgroundServer(create_app(state)) as server:
        client = OpenAI(base_url=server.url, api_key="none")
        reply = client.chat.completions.create(model="base", messages=QUESTION, max_tokens=12, temperature=0,
                                               logprobs=True, top_logprobs=3, frequency_penalty=0.5)
    content = reply.choices[0].logprobs.content
    assert "".join(e.token for e in content) == reply.choices[0].message.content
    assert all(len(e.top_logprobs) == 3 and e.logprob <= 0 for e in content)
