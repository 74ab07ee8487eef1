"""Task payload encoders: how task args and results become JSON-safe data in envelopes and backends.

Every encoder has an ``id`` that travels with the payload (header ``stem-args-encoder``, meta
``__stemArgsEncoder`` / ``__stemResultEncoder``), so the reader picks the matching decoder from a
:class:`TaskPayloadEncoderRegistry`. :class:`JsonTaskPayloadEncoder` (``"json"``) is the
default; :class:`CloudpickleTaskPayloadEncoder` (``"cloudpickle"``) carries notebook objects
(lambdas, class instances, numpy arrays) as base64 text.
"""

from __future__ import annotations

import abc
import base64
from collections.abc import Iterable
from typing import Any

from ._exceptions import EncodingError

__all__ = [
    "ARGS_ENCODER_HEADER",
    "ARGS_ENCODER_META",
    "RESULT_ENCODER_META",
    "CloudpickleTaskPayloadEncoder",
    "JsonTaskPayloadEncoder",
    "TaskPayloadEncoder",
    "TaskPayloadEncoderRegistry",
]

ARGS_ENCODER_HEADER = "stem-args-encoder"
ARGS_ENCODER_META = "__stemArgsEncoder"
RESULT_ENCODER_META = "__stemResultEncoder"

_SCALARS = (str, int, float, bool, type(None))


class TaskPayloadEncoder(abc.ABC):
    """Turns task args/results into JSON-safe data and back. ``id`` names it on the wire."""

    id: str = ""

    @abc.abstractmethod
    def encode(self, value: Any, *, what: str = "value") -> Any:
        """Return ``value`` as JSON-safe data.

        Raises:
            EncodingError: ``value`` cannot be encoded; the message names ``what`` and the
                path of the offending part (e.g. ``args['points'][2]``).
        """

    @abc.abstractmethod
    def decode(self, data: Any, *, what: str = "value") -> Any:
        """Return the value :meth:`encode` produced ``data`` from.

        Raises:
            EncodingError: ``data`` was not produced by this encoder or is corrupt.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


def _json_safe(value: Any, path: str) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(
                    f"{path} has a key {key!r} of type {type(key).__name__}; JSON object keys "
                    "must be str (use the 'cloudpickle' encoder for other keys)"
                )
            out[key] = _json_safe(item, f"{path}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise EncodingError(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which JSON cannot "
        "encode; convert it, or use the 'cloudpickle' encoder for Python objects"
    )


class JsonTaskPayloadEncoder(TaskPayloadEncoder):
    """The default encoder (id ``"json"``): checks that a value is plain JSON data.

    ``encode`` returns a normalised copy (tuples become lists), so a value reads back the same
    from every broker and backend, in memory or over the network.
    """

    id = "json"

    def encode(self, value: Any, *, what: str = "value") -> Any:
        return _json_safe(value, what)

    def decode(self, data: Any, *, what: str = "value") -> Any:
        return data


class CloudpickleTaskPayloadEncoder(TaskPayloadEncoder):
    """Encoder id ``"cloudpickle"``: any picklable Python object, as ``{"cloudpickle": base64}``.

    Only decode payloads from producers you trust (unpickling runs code), as with any pickle;
    combine it with :class:`stemnb.PayloadSigner` on shared brokers.
    """

    id = "cloudpickle"
    _KEY = "cloudpickle"

    def encode(self, value: Any, *, what: str = "value") -> Any:
        import cloudpickle

        try:
            raw = cloudpickle.dumps(value)
        except Exception as exc:
            raise EncodingError(
                f"{what} ({type(value).__qualname__}) cannot be pickled: {type(exc).__name__}: {exc}"
            ) from exc
        return {self._KEY: base64.b64encode(raw).decode("ascii")}

    def decode(self, data: Any, *, what: str = "value") -> Any:
        import pickle

        if not (
            isinstance(data, dict) and set(data) == {self._KEY} and isinstance(data[self._KEY], str)
        ):
            raise EncodingError(
                f"{what} is not a cloudpickle payload (expected {{'cloudpickle': <base64 str>}}, "
                f"got {type(data).__name__})"
            )
        try:
            return pickle.loads(base64.b64decode(data[self._KEY], validate=True))
        except Exception as exc:
            raise EncodingError(
                f"{what} could not be unpickled: {type(exc).__name__}: {exc}"
            ) from exc


class TaskPayloadEncoderRegistry:
    """Encoders by id, plus the default used when a payload names none.

    Holds the JSON and cloudpickle encoders from the start; ``encoders`` adds (or replaces, by
    id) more. ``default`` is an encoder or a registered id (default ``"json"``).
    """

    def __init__(
        self,
        encoders: Iterable[TaskPayloadEncoder] = (),
        *,
        default: TaskPayloadEncoder | str = "json",
    ) -> None:
        self._encoders: dict[str, TaskPayloadEncoder] = {}
        for encoder in (JsonTaskPayloadEncoder(), CloudpickleTaskPayloadEncoder(), *encoders):
            self.register(encoder)
        if isinstance(default, TaskPayloadEncoder):
            self.register(default)
            default = default.id
        self._default = self.get(default)

    def register(self, encoder: TaskPayloadEncoder) -> None:
        """Add ``encoder`` under its id, replacing any with the same id.

        Raises:
            TypeError: ``encoder`` is not a :class:`TaskPayloadEncoder` with a non-empty str id.
        """
        if not isinstance(encoder, TaskPayloadEncoder):
            raise TypeError(f"expected a TaskPayloadEncoder, got {type(encoder).__name__}")
        if not isinstance(encoder.id, str) or not encoder.id:
            raise TypeError(f"encoder {encoder!r} needs a non-empty str id")
        self._encoders[encoder.id] = encoder

    def get(self, encoder_id: str | None) -> TaskPayloadEncoder:
        """Return the encoder registered as ``encoder_id`` (``None``: the default).

        Raises:
            EncodingError: no encoder has that id (the message lists the known ids).
        """
        if encoder_id is None:
            return self._default
        try:
            return self._encoders[encoder_id]
        except KeyError:
            known = ", ".join(sorted(self._encoders))
            raise EncodingError(
                f"no payload encoder with id {encoder_id!r} is registered (known: {known})"
            ) from None

    @property
    def default(self) -> TaskPayloadEncoder:
        """The encoder used when a payload names none."""
        return self._default

    @property
    def ids(self) -> list[str]:
        """The registered encoder ids, sorted."""
        return sorted(self._encoders)

    def __contains__(self, encoder_id: object) -> bool:
        return encoder_id in self._encoders

    def __repr__(self) -> str:
        return f"TaskPayloadEncoderRegistry(ids={self.ids}, default={self._default.id!r})"
