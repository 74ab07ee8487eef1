"""The one place the Redis-backed parts get their client from."""

from __future__ import annotations

from typing import Any

try:
    import redis as _redis
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the Redis parts of stemnb need the redis package: pip install "stemnb[redis]"'
    ) from None

__all__ = ["connect"]


def connect(url: str, client: Any, what: str) -> tuple[Any, bool]:
    """Return ``(client, owned)``: ``client`` if given, else a new one for ``url`` (owned).

    Raises:
        ValueError: the given client decodes responses to str; ``what`` needs bytes.
    """
    if client is None:
        return _redis.Redis.from_url(url), True
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ValueError(f"{what} needs a redis client with decode_responses=False")
    return client, False
