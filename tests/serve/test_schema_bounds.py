"""The chat-completions request takes the ranges of the [generation] settings it sets from engine.settings (one
owner, issue 27 item 3: serve/schema.py had its own copies, temperature <= 2 there and <= 100 in a profile);
where the API keeps a narrower range (OpenAI's documented temperature range, a cap on top_k) it is declared once,
in API_RANGES, and those are the only differences."""

from __future__ import annotations

import annotated_types as at
import pytest
from pydantic import ValidationError

from engine.errors import UserError
from engine.serve.schema import API_RANGES, SETTING_OF, ChatCompletionRequest
from engine.settings import SamplingSettings, check_value

OPS = ("gt", "ge", "lt", "le")


def _bounds(info) -> dict[str, float]:
    return {op: getattr(m, op) for m in info.metadata if isinstance(m, (at.Gt, at.Ge, at.Lt, at.Le))
            for op in OPS if hasattr(m, op)}


def test_every_request_field_named_like_a_setting_takes_its_range():
    request, settings = ChatCompletionRequest.model_fields, SamplingSettings.__pydantic_fields__
    assert set(request) & set(settings) <= set(SETTING_OF)
    for field, setting in SETTING_OF.items():
        expected = {**_bounds(settings[setting]), **API_RANGES.get(field, {})}
        assert _bounds(request[field]) == expected, field


def test_the_declared_differences_only_narrow():
    settings = SamplingSettings.__pydantic_fields__
    assert set(API_RANGES) <= set(SETTING_OF)
    for field, narrower in API_RANGES.items():
        own = _bounds(settings[SETTING_OF[field]])
        for op, value in narrower.items():
            assert op in ("le", "lt") and (op not in own or value < own[op]), (field, op)


@pytest.mark.parametrize(("field", "value"), [("temperature", 50.0), ("top_k", 2_000_000)])
def test_a_value_a_profile_may_set_but_a_request_may_not_is_declared(field, value):
    assert field in API_RANGES
    check_value(SamplingSettings, SETTING_OF[field], value, "x")  # a profile accepts it
    with pytest.raises(ValidationError):
        ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **{field: value})


@pytest.mark.parametrize(("field", "value"), [("max_tokens", 0), ("top_p", 1.5), ("repetition_penalty", 0.0),
                                              ("seed", 2**32), ("temperature", -0.5)])
def test_outside_the_settings_range_is_refused_by_both(field, value):
    with pytest.raises(UserError):
        check_value(SamplingSettings, SETTING_OF[field], value, "x")
    with pytest.raises(ValidationError):
        ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **{field: value})
