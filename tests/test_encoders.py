"""Task payload encoders: JSON (default) and cloudpickle, and the registry that picks them."""

from __future__ import annotations

import json

import pytest

from stemnb import (
    CloudpickleTaskPayloadEncoder,
    EncodingError,
    JsonTaskPayloadEncoder,
    TaskPayloadEncoder,
    TaskPayloadEncoderRegistry,
)


def test_json_encoder_passes_plain_data_and_normalises_tuples():
    value = {"a": [1, 2.5, None, True], "b": {"c": ("x", "y")}, "s": "é"}
    encoded = JsonTaskPayloadEncoder().encode(value)
    assert encoded == {"a": [1, 2.5, None, True], "b": {"c": ["x", "y"]}, "s": "é"}
    assert json.loads(json.dumps(encoded)) == encoded
    assert JsonTaskPayloadEncoder().decode(encoded) == encoded


def test_json_encoder_names_the_path_of_an_unencodable_value():
    with pytest.raises(EncodingError, match=r"args\['points'\]\[2\] is a builtins.set") as info:
        JsonTaskPayloadEncoder().encode({"points": [1, 2, {3}]}, what="args")
    assert "cloudpickle" in str(info.value)
    assert isinstance(info.value, TypeError)


def test_json_encoder_refuses_non_string_keys():
    with pytest.raises(EncodingError, match=r"result\['m'\] has a key 1 of type int"):
        JsonTaskPayloadEncoder().encode({"m": {1: "one"}}, what="result")


def test_json_encoder_refuses_arbitrary_objects():
    class Point:
        pass

    with pytest.raises(EncodingError, match="Point"):
        JsonTaskPayloadEncoder().encode(Point())


def test_cloudpickle_encoder_round_trips_notebook_objects_as_json_safe_text():
    encoder = CloudpickleTaskPayloadEncoder()
    scale = 3
    value = {"fn": lambda x: x * scale, "s": {1, 2}, "t": (1, 2)}
    encoded = encoder.encode(value)
    assert json.loads(json.dumps(encoded)) == encoded
    decoded = encoder.decode(encoded)
    assert decoded["fn"](2) == 6 and decoded["s"] == {1, 2} and decoded["t"] == (1, 2)


def test_cloudpickle_encoder_reports_unpicklable_values():
    import threading

    with pytest.raises(EncodingError, match=r"args .*cannot be pickled"):
        CloudpickleTaskPayloadEncoder().encode({"lock": threading.Lock()}, what="args")


@pytest.mark.parametrize(
    "data", [{"x": 1}, "text", {"cloudpickle": "@@not base64@@"}, {"cloudpickle": "AAAA"}]
)
def test_cloudpickle_encoder_refuses_foreign_or_corrupt_payloads(data):
    with pytest.raises(EncodingError, match="result"):
        CloudpickleTaskPayloadEncoder().decode(data, what="result")


def test_registry_holds_json_and_cloudpickle_and_defaults_to_json():
    registry = TaskPayloadEncoderRegistry()
    assert registry.ids == ["cloudpickle", "json"]
    assert registry.default.id == "json"
    assert registry.get(None) is registry.default
    assert isinstance(registry.get("cloudpickle"), CloudpickleTaskPayloadEncoder)


def test_registry_names_known_ids_for_an_unknown_one():
    with pytest.raises(EncodingError, match=r"'msgpack'.*known: cloudpickle, json"):
        TaskPayloadEncoderRegistry().get("msgpack")


def test_registry_accepts_custom_encoders_and_default():
    class Upper(TaskPayloadEncoder):
        id = "upper"

        def encode(self, value, *, what="value"):
            return str(value).upper()

        def decode(self, data, *, what="value"):
            return data.lower()

    registry = TaskPayloadEncoderRegistry([Upper()], default="upper")
    assert registry.default.encode("abc") == "ABC" and "upper" in registry
    with pytest.raises(TypeError, match="TaskPayloadEncoder"):
        registry.register(object())
