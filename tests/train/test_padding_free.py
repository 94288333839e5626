"""Padding-free SFT batches on CPU attention (sdpa/eager): rows laid end to end must not see each other."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_padding_free_batches_give_the_padded_loss_and_are_chosen_for_the_demo_model(demo_model_dir, impl):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train import sft

    model = AutoModelForCausalLM.from_pretrained(str(demo_model_dir), attn_implementation=impl)
    model.config.use_cache = False  # as engine.train.model.load_base leaves it
    on, why = sft.padding_free_choice(model, True)
    assert on and "padding-free" in why

    gen = torch.Generator().manual_seed(1)
    rows = [{"input_ids": torch.randint(0, model.config.vocab_size, (n,), generator=gen).tolist()} for n in (5, 40, 17)]
    with torch.no_grad():
        padded = model(**sft._collator(0, False)(rows)).loss
        packed = model(**sft._collator(0, True)(rows)).loss
    assert torch.allclose(padded, packed, atol=1e-5), (padded, packed)


def test_the_probe_refuses_a_model_whose_packed_rows_see_each_other(demo_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from engine.train import sft

    class NoPositions(torch.nn.Module):
        """Like a custom (trust_remote_code) model that numbers positions itself: one causal run over all rows."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, input_ids, position_ids=None, **kwargs):
            return self.inner(input_ids=input_ids, use_cache=False)

    model = NoPositions(AutoModelForCausalLM.from_pretrained(str(demo_model_dir)))
    on, why = sft.padding_free_choice(model, True)
    assert not on and "batches are padded" in why
    assert sft.padding_free_choice(model, False) == (False, "padding_free off in the profile")
