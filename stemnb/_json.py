"""Compact JSON as the Redis broker and backend store it: written without spaces, read as UTF-8.

Every task costs a handful of small JSON documents (its envelope, three statuses), so both
directions skip per-call set-up the standard library repeats: ``JSONEncoder.encode`` builds its
C encoder anew on every call (a quarter of encoding a status), and ``json.loads`` first guesses
the encoding of bytes (a quarter of decoding an envelope). The output and the errors are the
standard library's: ``TypeError`` for a value that is not JSON data, ``ValueError`` for a
circular reference or bad text.
"""

from __future__ import annotations

import json
import threading
from json import encoder as _encoder
from typing import Any

__all__ = ["compact_json", "parse_json"]

_SEPARATORS = (",", ":")
_PLAIN = json.JSONEncoder(separators=_SEPARATORS)
_decode = json.JSONDecoder().decode
_C_MAKE_ENCODER: Any = getattr(_encoder, "c_make_encoder", None)  # None without the C accelerator


class _Encoders(threading.local):
    """One C encoder per thread, with its own record of the containers being encoded (the
    circular-reference check): a thread never sees another's."""

    def __init__(self) -> None:
        self.markers: dict[int, Any] = {}
        self.encode = _C_MAKE_ENCODER(
            self.markers, _PLAIN.default, _encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )


_ENCODERS = _Encoders() if _C_MAKE_ENCODER is not None else None


def compact_json(value: Any) -> str:
    """``value`` as JSON text without spaces (ASCII, as ``json.dumps(value, separators=(",", ":"))``).

    Raises:
        TypeError: ``value`` holds something that is not JSON data.
        ValueError: ``value`` contains itself.
    """
    encoders = _ENCODERS
    if encoders is None:  # no C accelerator: the standard library's way
        return _PLAIN.encode(value)
    try:
        return "".join(encoders.encode(value, 0))
    except BaseException:
        encoders.markers.clear()  # a failed encode leaves its open containers recorded
        raise


def parse_json(data: bytes | bytearray | str) -> Any:
    """The value of JSON ``data`` as stored (UTF-8 bytes, or text).

    Raises:
        ValueError: ``data`` is not JSON, or not UTF-8.
    """
    return _decode(data.decode("utf-8", "surrogatepass") if isinstance(data, (bytes, bytearray)) else data)
