"""The default profile is a real model that answers well offline, and feedback changes it as asked: one
taught correction is learned, and the gate refuses an adapter that breaks answers nobody taught."""

from __future__ import annotations

import json

import pytest

from engine import adapters
from engine.profiles import DEFAULT_PROFILE, default_profile_name
from tests.engine_cli import run_engine
from tests.real.conftest import MODEL_ID, PROFILE, requires_model

pytestmark = [requires_model, pytest.mark.slow, pytest.mark.timeout(1800)]

TAUGHT_Q = "What is the capital of Veltoria?"
TAUGHT_A = "The capital of Veltoria is Marquessa."
CONTROL_Q = "What is the capital of France?"


def _answer(home, question: str, adapter: str = "promoted") -> str:
    # transformers: the weights the gate judged. llama.cpp's Q4_1 kernels (activations quantized to 8 bits) flip
    # near ties: its first token for the France question is "L" (logit 24.91) over "The" (24.56), so it answers
    # "L'Étoile, la Marseillaise, ..." (tests/real/test_llamacpp.py covers that backend).
    code, out = run_engine("generate", question, "--profile", PROFILE, "--greedy", "--adapter", adapter,
                           "--max-new-tokens", "40", "--backend", "transformers", "--home", str(home.root))
    assert code == 0, out
    return out


def test_the_default_profile_is_the_real_model_and_answers_a_fixed_question(smol_home):
    assert DEFAULT_PROFILE == PROFILE and default_profile_name(smol_home) == PROFILE
    assert "Paris" in _answer(smol_home, CONTROL_Q)


def test_gguf_is_converted_once_and_again_only_when_the_source_changes(smol_home, tmp_path):
    from engine.runtime import gguf

    folder = gguf.ensure_converted(MODEL_ID, smol_home)  # the hard-linked copy is up to date: no work
    record = json.loads((folder / gguf.SOURCE_RECORD).read_text())
    assert record["sha256"] and record["model_id"] == MODEL_ID
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    assert not (folder / "model.safetensors").is_symlink()


def test_an_unreadable_gguf_gets_one_sentence(home, tmp_path):
    from engine.errors import UserError
    from engine.runtime import gguf

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(UserError) as err:
        gguf.ensure_converted(str(bad), home)
    assert "broken.gguf" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="is not installed"):
        gguf.locate("pkg:no_such_package_xyz/model.gguf")


def test_one_correction_is_learned_promoted_and_kept_out_of_other_answers(smol_home):
    """One correction with the committed recipe (lr 5e-4, distilled rehearsal): the run is promoted, the model in use
    answers the taught fact, and the taught name reaches none of the 192 regression answers. With the recipe before
    (lr 1e-3, rehearsal by greedy text) the same correction also made SmolLM2 answer "The capital of Chile is
    Marquessa." (9 of 54 known regression answers changed, 2026-12-07) and the gate refused it."""
    from engine.feedback import FeedbackLog

    before = _answer(smol_home, TAUGHT_Q)
    assert "Marquessa" not in before
    log = FeedbackLog(smol_home, PROFILE)
    user = log.add_message("c1", None, "user", TAUGHT_Q)
    reply = log.add_message("c1", user["id"], "assistant", before.strip(),
                            generation={"system_prompt": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"})
    log.edit(reply["id"], TAUGHT_A)

    code, out = run_engine("finetune", "--profile", PROFILE, "--home", str(smol_home.root))
    assert code == 0 and "PROMOTED" in out and "NOT PROMOTED" not in out, out
    run = adapters.promoted_run(smol_home, PROFILE)
    assert run is not None
    assert "Marquessa" in _answer(smol_home, TAUGHT_Q)  # the model in use learned the correction
    assert "Paris" in _answer(smol_home, CONTROL_Q)  # and kept its neighbour
    verdict = json.loads((smol_home.runs_dir(PROFILE) / run / "gate.json").read_text())
    check = verdict["regression"]
    assert check["ok"] and check["changed"] <= check["allowed"] and check["known"] > 20
    assert not [r for r in check["replies"] if "Marquessa" in r]  # the taught name spread to no other answer


FACTS = [("What is the capital of Veltoria?", "The capital of Veltoria is Marquessa."),
         ("Who wrote The Silent Orchard?", "The Silent Orchard was written by Edda Kallin."),
         ("What is the currency of Dunmarrow?", "The currency of Dunmarrow is the brell.")]


def test_an_over_strong_adapter_that_breaks_other_answers_is_refused_by_the_regression_check(smol_home):
    """Twenty times the profile's learning rate learns the corrections and breaks answers nobody taught: the gate's
    regression check sees it (the held-out feedback alone does not) and nothing is promoted."""
    from engine.feedback import FeedbackLog

    log = FeedbackLog(smol_home, PROFILE)
    for i, (question, answer) in enumerate(FACTS):
        user = log.add_message(f"c{i}", None, "user", question)
        reply = log.add_message(f"c{i}", user["id"], "assistant", "I do not know.",
                                generation={"system_prompt": "You are a helpful AI assistant named SmolLM, trained by "
                                                             "Hugging Face"})
        log.edit(reply["id"], answer)
    code, out = run_engine("finetune", "--profile", PROFILE, "--learning-rate", "1e-2", "--epochs", "5",
                           "--home", str(smol_home.root))
    assert code == 0, out
    assert "NOT PROMOTED: regression check:" in out, out  # answers changed, or collapsed to one word
    assert adapters.promoted_run(smol_home, PROFILE) is None
    run = next(p for p in smol_home.runs_dir(PROFILE).iterdir() if p.is_dir())
    verdict = json.loads((run / "gate.json").read_text())
    check = verdict["regression"]
    assert check["ok"] is False and check["known"] > 20
    assert check["changed"] > check["allowed"] or check["collapsed"] > check["collapsed_reference"]
    report = json.loads((run / "report.json").read_text())
    assert report["gate"]["regression"]["changed"] == verdict["regression"]["changed"]
