"""The model runtime on the real demo model: loading, greedy/seeded generation, streaming, cancel,
the generation record, LoRA adapter switching and the errors a user can cause."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from engine import adapters as pointer
from engine.errors import UserError
from engine.home import Home
from engine.profiles import load_profile, parse_profile
from engine.runtime import GenerationParams, load_model, resolve_adapter
from tests.conftest import install_demo_model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
RECORD_FIELDS = {"profile", "model", "revision", "adapter", "system_prompt", "params", "seed", "prompt_tokens",
                 "completion_tokens", "ttft_s", "tokens_per_s", "elapsed_s", "stopped"}


@pytest.fixture(scope="module")
def mhome(tmp_path_factory, demo_model_dir) -> Home:
    return install_demo_model(Home.resolve(tmp_path_factory.mktemp("rt") / "home"), demo_model_dir)


@pytest.fixture(scope="module")
def profile(mhome):
    return load_profile("demo", mhome)


@pytest.fixture(scope="module")
def lm(mhome, profile):
    stages = []
    model = load_model(profile, mhome, progress=lambda stage, fraction: stages.append((stage, fraction)))
    model.stages = stages
    return model


def plain_greedy(lm, messages, max_new_tokens):
    """The reference: model.generate + decode, no runtime machinery."""
    import torch

    ids = lm.encode(messages)
    with torch.no_grad():
        out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=max_new_tokens, pad_token_id=lm.tokenizer.pad_token_id)
    return lm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, demo_model_dir):
    """A non-trivial LoRA adapter for the demo model, saved the way the finetune helper saves them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(demo_model_dir)
    torch.manual_seed(0)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = "builtin:demo"
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out, save_embedding_layers=False)
    return out


@pytest.mark.slow  # imports torch: seconds when it runs alone
def test_auto_dtype_stays_fp32_on_cpu():
    """bf16 on a CPU was slower and changed greedy replies (bench/README.md, "Real model (issue 17)")."""
    import torch

    from engine.runtime.device import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16  # asked for explicitly, it is what you get


def test_load_reports_progress_and_describes_the_model(lm, mhome, profile):
    stages = [s for s, _ in lm.stages]
    assert stages[0] == "tokenizer" and stages[-1] == "ready"
    assert stages.index("tokenizer") < stages.index("weights") < stages.index("device") < stages.index("ready")
    fractions = [f for s, f in lm.stages if s == "weights"]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert (lm.device, lm.dtype, lm.model_id, lm.adapter) == ("cpu", "fp32", "builtin:demo", None)
    assert lm.revision.startswith("sha256:")
    assert load_model(profile, mhome).revision == lm.revision  # a fingerprint of the content, stable


@pytest.mark.slow
def test_greedy_reply_is_deterministic_and_equals_plain_generate(lm):
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=24, do_sample=False)
    text1, rec1 = lm.generate(QUESTION, params)
    text2, _ = lm.generate(QUESTION, params)
    assert text1 and text1 == text2
    assert text1 == plain_greedy(lm, QUESTION, 24)
    assert rec1["params"]["do_sample"] is False


@pytest.mark.slow
def test_streaming_yields_pieces_that_join_to_the_greedy_reply(lm):
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=32, do_sample=False)
    gen = lm.stream(QUESTION, params)
    gen.coalesce_s = 0  # a piece per wake-up, no gathering (the default gathers ~20 ms of tokens)
    pieces = list(gen)
    assert len(pieces) > 1
    assert "".join(pieces) == plain_greedy(lm, QUESTION, 32) == gen.text
    rec = gen.record
    assert RECORD_FIELDS <= set(rec)
    assert rec["stopped"] is False and rec["finish_reason"] == "length"
    assert rec["completion_tokens"] == 32 and rec["prompt_tokens"] == lm.encode(QUESTION).shape[1]
    assert rec["ttft_s"] > 0 and rec["elapsed_s"] >= rec["ttft_s"] and rec["tokens_per_s"] > 0
    assert rec["profile"] == "demo" and rec["model"] == "builtin:demo" and rec["revision"] == lm.revision
    assert rec["system_prompt"] == lm.profile.system_prompt and rec["adapter"] is None
    assert set(rec["params"]) == {"max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "do_sample"}
    assert isinstance(rec["seed"], int)
    json.dumps(rec)  # goes into the feedback log as is


def test_incremental_decoding_joins_to_the_full_text_even_across_split_characters(lm):
    from engine.runtime.streaming import IncrementalDecoder

    text = "Héllo wörld 🙂 日本語, def f(x):\n    return x"
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    decoder = IncrementalDecoder(lm.tokenizer)
    pieces = [decoder.add([i]) for i in ids] + [decoder.add([], final=True)]
    assert "".join(pieces) == text
    assert len([p for p in pieces if p]) > 10 and not any("\ufffd" in p for p in pieces)


def test_cancel_after_the_first_piece_stops_within_a_token(lm):
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=200, do_sample=False)
    gen = lm.stream(QUESTION, params)
    pieces = []
    at_cancel = None
    for piece in gen:
        pieces.append(piece)
        if at_cancel is None:
            at_cancel = gen._streamer.count  # tokens the model had produced when we said stop
            gen.cancel()
    assert gen.record["stopped"] is True and gen.record["finish_reason"] == "cancelled"
    # the step in flight may finish, plus the one whose stop check had already run
    assert gen.record["completion_tokens"] <= at_cancel + 2 < 200
    assert "".join(pieces) == gen.text
    # the model is free again at once
    text, rec = lm.generate(QUESTION, params.replace(max_new_tokens=4))
    assert rec["stopped"] is False and rec["completion_tokens"] == 4


def test_leaving_the_loop_early_stops_the_model(lm):
    gen = lm.stream(QUESTION, GenerationParams.from_profile(lm.profile, max_new_tokens=200))
    for _ in gen:
        break  # the loop drops the iterator: its cleanup cancels and waits for the worker
    assert gen.record["stopped"] is True and gen.record["completion_tokens"] < 200
    text, rec = lm.generate(QUESTION, GenerationParams.from_profile(lm.profile, max_new_tokens=3))
    assert rec["completion_tokens"] == 3


def test_system_prompt_is_recorded_and_changes_the_prompt(lm):
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=8)
    _, default = lm.generate(QUESTION, params)
    _, custom = lm.generate(QUESTION, params, system_prompt="Answer in French.")
    assert default["system_prompt"] == "You are a helpful assistant."
    assert custom["system_prompt"] == "Answer in French."
    assert custom["prompt_tokens"] != default["prompt_tokens"]


def test_sampling_is_reproducible_by_seed(lm):
    params = GenerationParams.from_profile(lm.profile, do_sample=True, temperature=1.0, max_new_tokens=24)
    a, rec_a = lm.generate(QUESTION, params.replace(seed=7))
    b, _ = lm.generate(QUESTION, params.replace(seed=7))
    c, _ = lm.generate(QUESTION, params.replace(seed=8))
    assert a == b and a != c and rec_a["seed"] == 7
    _, drawn = lm.generate(QUESTION, params)
    assert isinstance(drawn["seed"], int)  # drawn when not given, and recorded


def test_two_streams_at_once_take_turns(lm):
    params = GenerationParams.from_profile(lm.profile, max_new_tokens=12, do_sample=False)
    first, second = lm.stream(QUESTION, params), lm.stream(QUESTION, params)
    results = {}
    t = threading.Thread(target=lambda: results.setdefault("second", second.wait()))
    t.start()
    results["first"] = first.wait()
    t.join(60)
    assert results["first"] == results["second"] == plain_greedy(lm, QUESTION, 12)


def test_generation_params_from_profile_and_overrides(profile):
    p = GenerationParams.from_profile(profile)
    assert (p.max_new_tokens, p.do_sample, p.seed) == (64, False, None)
    q = GenerationParams.from_profile(profile, max_new_tokens=5, do_sample=None, seed=3)
    assert (q.max_new_tokens, q.do_sample, q.seed) == (5, False, 3)  # None means "not overridden"
    with pytest.raises(UserError, match="--max-new-tokens 0 must be an integer >= 1"):
        GenerationParams.from_profile(profile, max_new_tokens=0)
    with pytest.raises(TypeError):
        GenerationParams.from_profile(profile, nonsense=1)


# -- adapters -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_lora_adapter_changes_the_reply_and_none_restores_the_base_exactly(mhome, profile, lora_dir):
    lm = load_model(profile, mhome)
    params = GenerationParams.from_profile(profile, max_new_tokens=24, do_sample=False)
    base, _ = lm.generate(QUESTION, params)
    lm.load_adapter("20260101-000000-sft", lora_dir)
    assert lm.adapter is None and lm.generate(QUESTION, params)[0] == base  # loading does not switch
    lm.use_adapter("20260101-000000-sft")
    tuned, rec = lm.generate(QUESTION, params)
    assert tuned != base and rec["adapter"] == "20260101-000000-sft"
    lm.use_adapter(None)
    again, rec = lm.generate(QUESTION, params)
    assert again == base and rec["adapter"] is None
    lm.use_adapter("20260101-000000-sft")
    assert lm.generate(QUESTION, params)[0] == tuned
    with pytest.raises(UserError, match="not loaded"):
        lm.use_adapter("20260202-000000-dpo")


def test_promoted_adapter_is_loaded_by_default(tmp_path, demo_model_dir, lora_dir):
    h = install_demo_model(Home.resolve(tmp_path / "home"), demo_model_dir)
    run_id = "20260101-000000-sft"
    shutil.copytree(lora_dir, pointer.adapter_path(h, "demo", run_id))
    profile = load_profile("demo", h)
    assert resolve_adapter(h, "demo", "promoted") == (None, None)
    pointer.set_promoted(h, "demo", run_id)
    assert resolve_adapter(h, "demo", "promoted") == (run_id, pointer.adapter_path(h, "demo", run_id))
    assert resolve_adapter(h, "demo", run_id)[0] == run_id
    assert resolve_adapter(h, "demo", "base") == resolve_adapter(h, "demo", None) == (None, None)
    with pytest.raises(UserError, match="no finished adapter"):
        resolve_adapter(h, "demo", "20990101-000000-sft")
    with pytest.raises(UserError):
        resolve_adapter(h, "demo", "../escape")
    lm = load_model(profile, h)
    assert lm.adapter == run_id
    assert load_model(profile, h, adapter="base").adapter is None


def test_adapter_for_another_base_is_refused(lm, tmp_path, lora_dir):
    other = tmp_path / "other"
    shutil.copytree(lora_dir, other)
    cfg = json.loads((other / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "Qwen/Qwen2.5-0.5B-Instruct"
    (other / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as err:
        lm.load_adapter("x", other)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in str(err.value) and "builtin:demo" in str(err.value)
    assert "x" not in lm.adapters


def test_adapter_saved_against_the_demo_folder_path_is_accepted(lm, mhome, tmp_path, lora_dir):
    by_path = tmp_path / "by-path"
    shutil.copytree(lora_dir, by_path)
    cfg = json.loads((by_path / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(mhome.demo_model_dir)
    (by_path / "adapter_config.json").write_text(json.dumps(cfg))
    lm.load_adapter("by-path", by_path)
    assert "by-path" in lm.adapters
    lm.unload_adapter("by-path")


def test_pickle_only_adapter_is_refused(lm, tmp_path, lora_dir):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(lora_dir / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="adapter_model.safetensors"):
        lm.load_adapter("p", pickled)


# -- loading errors ------------------------------------------------------------------------------


def _local_profile(model_dir, name="local"):
    return parse_profile(name, f'[model]\nid = "{model_dir}"\ndevice = "cpu"\n', model_dir / "p.toml")


def test_local_model_folder_loads_and_pickle_only_folder_is_refused(mhome, demo_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(demo_model_dir, copy)
    lm = load_model(_local_profile(copy), mhome)
    assert lm.path == copy.resolve() and lm.revision.startswith("sha256:")
    assert lm.generate(QUESTION, GenerationParams(max_new_tokens=3, do_sample=False))[1]["completion_tokens"] == 3

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(demo_model_dir / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UserError, match="pickle"):
        load_model(_local_profile(pickled), mhome)


def test_missing_local_path_and_uncached_hub_model_are_user_errors(mhome, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(_local_profile(tmp_path / "nowhere"), mhome)
    hub = parse_profile("hub", '[model]\nid = "tuneloop-test/not-a-real-model"\n', tmp_path / "hub.toml")
    with pytest.raises(UserError) as err:
        load_model(hub, mhome)
    assert "tuneloop-test/not-a-real-model" in str(err.value) and "--profile demo" in str(err.value)


def test_remote_code_in_a_model_folder_never_runs_unless_the_profile_trusts_it(mhome, demo_model_dir, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(demo_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    for name in ("configuration_x.py", "modeling_x.py"):
        (folder / name).write_text(f"open({str(marker)!r}, 'w').write('yes')\n")
    lm = load_model(_local_profile(folder), mhome)  # falls back to the built-in Llama classes
    assert not marker.exists()
    assert lm.generate(QUESTION, GenerationParams(max_new_tokens=2, do_sample=False))[1]["completion_tokens"] == 2


def test_out_of_memory_while_loading_becomes_a_user_error(profile):
    import torch

    from engine.runtime.loading import _friendly

    err = _friendly(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), profile, "x")
    assert isinstance(err, UserError) and "out of memory" in str(err) and "builtin:demo" in str(err)
    assert 'device = "cpu"' in str(err)


def test_profile_chat_template_replaces_the_tokenizers(mhome, tmp_path):
    text = (
        '[model]\nid = "builtin:demo"\ndevice = "cpu"\n'
        "chat_template = \"{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\\n{% endfor %}"
        "{% if add_generation_prompt %}[assistant] {% endif %}\"\n"
    )
    custom = parse_profile("custom", text, tmp_path / "custom.toml")
    lm = load_model(custom, mhome)
    prompt = lm.tokenizer.decode(lm.encode(QUESTION)[0])
    assert prompt == "[system] You are a helpful assistant.\n[user] What is the capital of France?\n[assistant] "
    assert lm.generate(QUESTION, GenerationParams(max_new_tokens=2, do_sample=False))[1]["completion_tokens"] == 2


def test_out_of_memory_mid_reply_surfaces_as_a_user_error_and_frees_the_model(mhome, profile, monkeypatch):
    import torch

    lm = load_model(profile, mhome)  # a private instance: the fault below is injected into it only
    real = lm.model.generate

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(lm.model, "generate", out_of_memory)  # a GPU OOM cannot happen on the CPU
    gen = lm.stream(QUESTION)
    with pytest.raises(UserError, match="out of memory"):
        list(gen)
    monkeypatch.setattr(lm.model, "generate", real)
    assert lm.generate(QUESTION, GenerationParams(max_new_tokens=2, do_sample=False))[1]["completion_tokens"] == 2


def test_a_reply_that_ends_with_the_end_token_finishes_with_stop(mhome, profile):
    lm = load_model(profile, mhome)  # private: its output layer gets a hook
    eos = lm.tokenizer.eos_token_id
    calls = []

    def end_at_fourth_token(module, inputs, output):
        calls.append(1)
        if len(calls) >= 4:  # the demo's random weights never end a reply by themselves
            output = output.clone()
            output[..., eos] += 1e4
        return output

    lm.model.lm_head.register_forward_hook(end_at_fourth_token)
    text, rec = lm.generate(QUESTION, GenerationParams(max_new_tokens=50, do_sample=False))
    assert rec["finish_reason"] == "stop" and rec["stopped"] is False
    assert rec["completion_tokens"] == 4 and text and "<|im_end|>" not in text
