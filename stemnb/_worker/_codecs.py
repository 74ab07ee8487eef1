"""Payload encoders as the producer and worker use them: args and results, with their ids.

The args encoder's id travels in header ``stem-args-encoder`` (and meta ``__stemArgsEncoder``),
the result encoder's in status meta ``__stemResultEncoder``, so a reader always decodes with the
encoder that wrote the payload. A handler's own encoders beat the worker's/producer's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._encoders import (
    ARGS_ENCODER_HEADER,
    ARGS_ENCODER_META,
    RESULT_ENCODER_META,
    TaskPayloadEncoder,
    TaskPayloadEncoderRegistry,
)


class Codecs:
    """The encoders of one producer or worker: a registry plus the default args/result encoders.

    ``args_encoder`` / ``result_encoder`` may be encoders or registered ids. Raises EncodingError
    for an unknown id and TypeError for something that is not an encoder.
    """

    def __init__(
        self,
        registry: TaskPayloadEncoderRegistry | None = None,
        args_encoder: TaskPayloadEncoder | str | None = None,
        result_encoder: TaskPayloadEncoder | str | None = None,
        additional: Iterable[TaskPayloadEncoder] = (),
    ) -> None:
        self.registry = registry if registry is not None else TaskPayloadEncoderRegistry()
        for encoder in additional:
            self.registry.register(encoder)
        self.args_encoder = self.resolve(args_encoder) or self.registry.default
        self.result_encoder = self.resolve(result_encoder) or self.registry.default

    def resolve(self, encoder: TaskPayloadEncoder | str | None) -> TaskPayloadEncoder | None:
        """Return the encoder for an id or instance (registering instances); None for None."""
        if encoder is None:
            return None
        if isinstance(encoder, str):
            return self.registry.get(encoder)
        if encoder.id not in self.registry or self.registry.get(encoder.id) is not encoder:
            self.registry.register(encoder)
        return encoder

    def _args_for(self, handler: Any) -> TaskPayloadEncoder:
        own = getattr(handler, "args_encoder", None)
        return self.resolve(own) or self.args_encoder

    def _result_for(self, handler: Any) -> TaskPayloadEncoder:
        own = getattr(handler, "result_encoder", None)
        return self.resolve(own) or self.result_encoder

    def encode_args(self, args: Any, handler: Any = None, encoder: Any = None) -> tuple[Any, dict[str, str], dict[str, Any]]:
        """Encode ``args``; return (data, headers, meta) naming the encoder. Raises EncodingError."""
        chosen = self.resolve(encoder) or self._args_for(handler)
        data = chosen.encode(args, what="args")
        return data, {ARGS_ENCODER_HEADER: chosen.id}, {ARGS_ENCODER_META: chosen.id}

    def decode_args(self, envelope: Any, handler: Any = None) -> Any:
        """Decode an envelope's args with the encoder it names. Raises EncodingError."""
        encoder_id = envelope.headers.get(ARGS_ENCODER_HEADER) or envelope.meta.get(ARGS_ENCODER_META)
        chosen = self.registry.get(encoder_id) if encoder_id else self._args_for(handler)
        return chosen.decode(envelope.args, what="args")

    def encode_result(self, result: Any, handler: Any = None) -> Any:
        """Encode a task result for the backend. Raises EncodingError."""
        return self._result_for(handler).encode(result, what="result")

    def result_meta(self, handler: Any = None) -> dict[str, Any]:
        """Status meta naming the result encoder."""
        return {RESULT_ENCODER_META: self._result_for(handler).id}

    def decode_result_status(self, status: Any) -> Any:
        """Decode a stored status's payload with the encoder its meta names."""
        if status is None or status.payload is None:
            return None
        return self.registry.get(status.meta.get(RESULT_ENCODER_META)).decode(status.payload, what="result")
