"""The feedback event schema is declared once, as typed models (engine.feedback.events.MODELS, issue 27 item 3);
the log still writes and reads the same plain JSON lines, and a bad event is the same one sentence naming the
field as the hand-written checks gave."""

from __future__ import annotations

import json
import typing

import pytest

from engine.feedback import FeedbackLog, InvalidEvent
from engine.feedback import events as ev

EVENTS = [
    {"v": 1, "type": "message", "id": "m1", "ts": 1.5, "conversation_id": "c", "parent_id": None, "role": "user",
     "content": "hi", "generation": None},
    {"v": 1, "type": "message", "id": "m2", "ts": 2, "conversation_id": "c", "parent_id": "m1", "role": "assistant",
     "content": "yo", "generation": {"system_prompt": None, "model": "x", "seed": 3}, "later_key": [1]},
    {"v": 1, "type": "rating", "id": "r", "ts": 3.0, "message_id": "m2", "value": -1, "tags": ["x"], "comment": None},
    {"v": 1, "type": "edit", "id": "e", "ts": 3.0, "message_id": "m2", "content": "better"},
    {"v": 1, "type": "choice", "id": "ch", "ts": 3.0, "chosen_id": "m2", "candidates": ["m2", "m3"],
     "kind": "compare", "sources": None},
    {"v": 1, "type": "title", "id": "t", "ts": 3.0, "conversation_id": "c", "title": "T"},
    {"v": 1, "type": "import", "id": "i", "ts": 3.0, "import_id": "x", "events": 2, "rows": 1, "sha256": "a" * 64,
     "file": "rows.jsonl"},
    {"v": 2, "type": "critique", "id": "k", "ts": 3.0, "message_id": "m2", "critique": "too long",
     "revision_id": None, "outcome": "discarded"},
]


def test_one_model_per_event_type_and_the_choices_come_from_them():
    assert ev.EVENT_TYPES == ("message", "rating", "edit", "choice", "title", "import", "critique")
    for kind, model in ev.MODELS.items():
        assert typing.get_args(model.model_fields["type"].annotation) == (kind,)
    assert ev.ROLES == ("system", "user", "assistant")
    assert ev.CHOICE_KINDS == ("regenerate", "compare", "best_of", "import")
    assert ev.CRITIQUE_OUTCOMES == ("accepted", "edited", "discarded")


@pytest.mark.parametrize("event", EVENTS, ids=[e["type"] + e["id"] for e in EVENTS])
def test_a_valid_event_is_returned_unchanged_and_written_as_it_was(home, event):
    assert ev.validate(event) is event
    log = FeedbackLog(home, "demo")
    log.append(dict(event))
    (line,) = log.path.read_bytes().splitlines()
    assert json.loads(line) == event  # the on-disk format: the object itself, every key kept
    assert log.read().events == [event]


@pytest.mark.parametrize(("change", "message"), [
    ({"value": True}, "feedback event 'rating' has an invalid 'value' (expected +1, -1 or 0, got True)."),
    ({"value": 1.0}, "feedback event 'rating' has an invalid 'value' (expected +1, -1 or 0, got 1.0)."),
    ({"ts": 10**400}, "feedback event 'rating' has an invalid 'ts' (expected a unix time, got 1000000000"),
    ({"v": 3}, "feedback event 'rating' has an invalid 'v' (expected an integer from 1 to 2, got 3)."),
    ({"comment": "DEL"}, "feedback event 'rating' has an invalid 'comment' (expected a string or null, got None)."),
    ({"tags": ["a", 1]}, "feedback event 'rating' has an invalid 'tags' (expected a list of strings, got ['a', 1])."),
    ({"id": "x" * 201}, "feedback event 'rating' has an invalid 'id' (expected a non-empty id string, got 'xxx"),
])
def test_a_bad_rating_names_the_field(change, message):
    event = dict(EVENTS[2])
    for key, value in change.items():
        if value == "DEL":
            del event[key]
        else:
            event[key] = value
    with pytest.raises(InvalidEvent) as info:
        ev.validate(event)
    assert str(info.value).startswith(message), str(info.value)


def test_nested_and_cross_field_problems_name_the_field():
    message = {**EVENTS[1], "generation": {"system_prompt": 3}}
    with pytest.raises(InvalidEvent, match=r"'message' has an invalid 'system_prompt' \(expected a string or null, "
                                           r"got 3\)\."):
        ev.validate(message)
    choice = {**EVENTS[4], "chosen_id": "m9", "kind": "nope"}  # chosen_id is checked before kind, as it was
    with pytest.raises(InvalidEvent, match=r"invalid 'chosen_id' \(expected one of the candidates, got 'm9'\)"):
        ev.validate(choice)
    with pytest.raises(InvalidEvent, match="'candidates' .expected a list of distinct id strings"):
        ev.validate({**EVENTS[4], "candidates": ["m2", "m2"]})
    with pytest.raises(InvalidEvent, match=r"invalid 'type' \(expected one of message, rating, edit, choice, title, "
                                           r"import, got 'critique'\)"):
        ev.validate({**EVENTS[7], "v": 1})  # a version-1 critique
    with pytest.raises(InvalidEvent, match="invalid 'critique' .expected a non-empty string"):
        ev.validate({**EVENTS[7], "critique": " \n"})
