"""Per-stage trainer arguments: the preference rate only for DPO/KTO, NEFTune only for SFT."""

from __future__ import annotations

import pytest

from engine.settings import TrainSettings
from engine.train.methods import METHODS
from engine.train.stage import stage_overrides


def test_neftune_goes_to_sft_and_the_preference_rate_to_dpo_and_kto():
    s = TrainSettings(neftune_noise_alpha=5.0, preference_learning_rate=1e-4)
    assert stage_overrides(s, METHODS["sft"]) == {"neftune_noise_alpha": 5.0}
    assert stage_overrides(s, METHODS["dpo"]) == {"learning_rate": 1e-4}
    assert stage_overrides(s, METHODS["kto"]) == {"learning_rate": 1e-4}
    for name, method in METHODS.items():  # RL (rloo, grpo) sets its own rate and takes no embedding noise
        if name not in ("sft", "dpo", "kto"):
            assert stage_overrides(s, method) == {}, name


def test_off_by_default():
    s = TrainSettings()
    assert s.neftune_noise_alpha == 0.0
    assert stage_overrides(s, METHODS["sft"]) == {} and stage_overrides(s, METHODS["dpo"]) == {}


def test_the_smollm2_profile_trains_sft_with_neftune():
    from engine.profiles import load_profile

    assert load_profile("smollm2-135m-instruct").train.neftune_noise_alpha == 5.0


@pytest.mark.slow
def test_an_sft_run_with_neftune_trains_and_promotes(log, demo_home, monkeypatch):
    """The demo profile's SFT stage with NEFTune on (padding-free batches): the Trainer takes the noise and the
    edit is still learned."""
    from engine.train import stage
    from tests.train.conftest import converse, run_engine

    seen = []

    def with_neftune(settings, method):
        out = dict(stage_overrides(settings, method), **({} if method.preference else {"neftune_noise_alpha": 5.0}))
        seen.append(out)
        return out

    monkeypatch.setattr(stage, "stage_overrides", with_neftune)
    _, (reply,) = converse(log, "What is the capital of France?", ["I like turtles and rain."])
    log.edit(reply["id"], "Paris is the capital of France.")
    code, out = run_engine("finetune", "--profile", "demo", "--method", "sft", "--home", str(demo_home.root))
    assert code == 0, out
    assert "PROMOTED" in out and seen and seen[0]["neftune_noise_alpha"] == 5.0
