"""Envelopes and deliveries: defaults, validation, immutability and the JSON round trip."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from stemnb import Delivery, Envelope, MalformedEnvelopeError, new_task_id


def test_envelope_defaults_match_stem():
    before = time.time()
    env = Envelope("tasks.add")
    assert (env.attempt, env.max_retries, env.priority, env.queue) == (0, 0, 0, "default")
    assert env.args == {} and env.headers == {} and env.meta == {}
    assert env.not_before is None and env.visibility_timeout is None
    assert before <= env.enqueued_at <= time.time()


def test_task_ids_are_time_ordered_uuid7_strings():
    ids = [new_task_id() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == 50
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # millisecond prefix is monotonic


def test_envelope_round_trips_through_json():
    env = Envelope(
        "tasks.add",
        {"a": [1, 2], "b": {"c": None}},
        headers={"tenant": "acme"},
        meta={"stem.retryPolicy": {"max_retries": 2}},
        queue="q",
        priority=7,
        attempt=2,
        max_retries=3,
        not_before=time.time() + 5,
        visibility_timeout=12.5,
    )
    assert Envelope.from_dict(json.loads(json.dumps(env.to_dict()))) == env


def test_envelope_copies_its_dicts_and_is_immutable():
    args = {"x": 1}
    env = Envelope("t", args)
    args["x"] = 2
    assert env.args == {"x": 1}
    with pytest.raises(AttributeError):
        env.attempt = 3


def test_replace_returns_a_validated_copy():
    env = Envelope("t")
    retry = env.replace(attempt=1, not_before=env.enqueued_at + 2)
    assert (retry.id, retry.attempt, env.attempt) == (env.id, 1, 0)
    with pytest.raises(MalformedEnvelopeError, match="attempt"):
        env.replace(attempt=-1)
    with pytest.raises(TypeError):
        env.replace(colour="red")


def test_is_due_follows_not_before():
    now = time.time()
    assert Envelope("t").is_due()
    assert not Envelope("t", not_before=now + 60).is_due(now)
    assert Envelope("t", not_before=now + 60).is_due(now + 60)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not a dict", "must be a dict, got str"),
        ({"name": "t"}, "no 'id' field"),
        ({"id": "x"}, "no 'name' field"),
        ({"id": "x", "name": ""}, "name must not be empty"),
        ({"id": "x", "name": 3}, "name must be a str"),
        ({"id": "x", "name": "t", "args": [1, 2]}, "args must be a dict"),
        ({"id": "x", "name": "t", "headers": {"h": 1}}, "headers must map str to str"),
        ({"id": "x", "name": "t", "args": {1: "a"}}, "args keys must be str"),
        ({"id": "x", "name": "t", "meta": {None: 1}}, "meta keys must be str"),
        ({"id": "x", "name": "t", "priority": 10}, "priority must be between 0 and 9"),
        ({"id": "x", "name": "t", "priority": "high"}, "priority must be an int"),
        ({"id": "x", "name": "t", "attempt": -1}, "attempt must be >= 0"),
        ({"id": "x", "name": "t", "max_retries": True}, "max_retries must be an int"),
        (
            {"id": "x", "name": "t", "enqueued_at": "yesterday"},
            "enqueued_at must be a finite number",
        ),
        (
            {"id": "x", "name": "t", "not_before": float("nan")},
            "not_before must be a finite number",
        ),
        ({"id": "x", "name": "t", "visibility_timeout": 0}, "visibility_timeout must be > 0"),
    ],
)
def test_malformed_envelope_dicts_raise_naming_the_field(data, message):
    with pytest.raises(MalformedEnvelopeError, match=message) as info:
        Envelope.from_dict(data)
    assert isinstance(info.value, ValueError)


def test_from_dict_ignores_unknown_keys_and_fills_defaults():
    env = Envelope.from_dict({"id": "x", "name": "t", "future_field": 1, "not_before": None})
    assert (env.id, env.queue, env.not_before) == ("x", "default", None)


def test_delivery_exposes_the_task_id():
    env = Envelope("t")
    assert Delivery(env, "r1", None, "default").task_id == env.id


def test_envelopes_are_hashable_by_id():
    env = Envelope("t", {"x": [1]})
    assert {env, env.replace()} == {env}
    assert hash(env) == hash(env.id)


def test_fields_of_subclassed_types_and_whole_number_times_are_accepted():
    class Name(str):
        pass

    class Level(int):
        pass

    envelope = Envelope(Name("t"), {}, id=Name("x"), queue=Name("q"), priority=Level(3), enqueued_at=1_700_000_000,
                        not_before=1_700_000_060, visibility_timeout=30)
    assert (envelope.name, envelope.priority, envelope.visibility_timeout) == ("t", 3, 30)
    with pytest.raises(MalformedEnvelopeError, match="priority must be between 0 and 9"):
        Envelope("t", priority=Level(12))
    with pytest.raises(MalformedEnvelopeError, match="visibility_timeout must be > 0"):
        Envelope("t", visibility_timeout=-5)


def test_a_header_value_that_is_not_a_string_is_refused_after_the_keys():
    with pytest.raises(MalformedEnvelopeError, match="headers must map str to str, got 'b': 2"):
        Envelope("t", headers={"a": "1", "b": 2})
    with pytest.raises(MalformedEnvelopeError, match="headers keys must be str"):
        Envelope("t", headers={3: "x"})
