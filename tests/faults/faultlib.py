"""Helpers shared by the fault-injection tests: subprocess environments and the engine argv.

Kept out of conftest.py so test modules can import them by name (tests/faults is on sys.path).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAULTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FAULTS_DIR.parent.parent
HELPERS_DIR = FAULTS_DIR / "helpers"


def engine_env(home, *, net_log: Path | None = None) -> dict:
    """Environment for a subprocess: offline, this home, the repo importable.

    ``net_log``: put helpers/ first on PYTHONPATH, so its sitecustomize.py refuses every non-Unix
    socket connection and logs each attempt to that file.
    """
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if net_log is not None:
        paths.insert(0, str(HELPERS_DIR))
        env["TUNELOOP_NET_GUARD_LOG"] = str(net_log)
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(
        TUNELOOP_HOME=str(home.root),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(paths),
    )
    return env


def engine_cmd(*args: str) -> list[str]:
    """The ``engine`` CLI as a subprocess argv, through the same interpreter as the tests."""
    return [sys.executable, "-m", "engine", *args]


def make_adapter(home, profile: str, run_id: str, base: str = "builtin:demo", seed: int = 0,
                 weights: str = "safetensors") -> Path:
    """A real, non-trivial LoRA adapter for the demo model at ``runs/<profile>/<run_id>/adapter``.

    ``base`` is written as its ``base_model_name_or_path``; ``weights="pickle"`` saves it as
    ``adapter_model.bin`` only (what tuneloop must refuse).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.safe_files import ensure_dir

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(home.demo_model_dir), use_safetensors=True)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                  init_lora_weights=False))
    out = ensure_dir(home.run_dir(profile, run_id)) / "adapter"
    peft_model.save_pretrained(str(out), safe_serialization=(weights == "safetensors"))
    cfg_path = out / "adapter_config.json"
    import json

    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base
    cfg_path.write_text(json.dumps(cfg))
    return out


def record_edit(home, profile: str = "demo", question: str = "What is the capital of France?",
                edited: str = "Paris is the capital of France.") -> None:
    """One conversation whose reply the user corrected: enough for ``engine finetune --method sft``."""
    from engine.feedback import FeedbackLog

    log = FeedbackLog(home, profile)
    user = log.add_message("conv-edit", None, "user", question)
    reply = log.add_message("conv-edit", user["id"], "assistant", "I like turtles.",
                            generation={"system_prompt": "You are a helpful assistant."})
    log.edit(reply["id"], edited)


def fake_unfinished_run(home, profile: str = "demo", run_id: str = "20260101-000000-sft") -> Path:
    """A finetune run of ``profile`` as a kill leaves it, built from files alone (no training): frozen data,
    a manifest ``--resume`` accepts (the data's fingerprint, the profile's settings as they are now), a complete
    ``checkpoints/1-sft/checkpoint-2`` (its torch file hashed into COMPLETE and the manifest), metrics.jsonl and
    an empty ``stages/``. Returns the run folder."""
    import json

    from engine import runs
    from engine.profiles import load_profile
    from engine.train import plan

    rd = runs.RunDir(home, profile, run_id)
    home.check_dir(rd.data, create=True)
    row = {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}]}
    (rd.data / "sft.train.jsonl").write_text(json.dumps(row) + "\n")
    (rd.data / "sft.eval.jsonl").write_text("")
    (rd.data / "split.json").write_text(json.dumps({"eval_conversations": [], "eval_on_train": True, "note": ""}))
    prof = load_profile(profile, home)
    rd.write_manifest({
        "command": "finetune", "run_id": run_id, "method": "sft", "plan": ["sft"],
        "data": {"fingerprint": runs.fingerprint_dir(rd.data, "*.jsonl"), "files": {}},
        "settings": {}, "profile_settings": plan.profile_settings(prof), "base_model": {"id": prof.model.id},
        "counts": {}, "rows": {"sft": {"train": 1, "eval": 0}}, "rl": {}, "overrides": {}, "gate_against": None,
    })
    ckpt = rd.checkpoints / "1-sft" / "checkpoint-2"
    home.check_dir(ckpt, create=True)
    (ckpt / "optimizer.pt").write_bytes(b"pretend optimizer state")
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    runs.mark_complete(ckpt, {"step": 2, "stage": "sft"})
    (rd.root / "metrics.jsonl").write_text(json.dumps({"stage": "sft", "step": 1, "loss": 1.0}) + "\n")
    home.check_dir(rd.root / "stages", create=True)
    return rd.root
