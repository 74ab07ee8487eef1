"""Helpers of ``IsolatePool``: argument checks, naming the unpicklable part, decoding outcomes, chunked maps."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._exceptions import RemoteError, RemoteTraceback, SerializationError
from ._future import Future
from ._serialize import loads


def _check_positive(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{label} must be a positive integer, not {value!r}")


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _blame(fn: Callable, args: tuple, kwargs: dict, exc: SerializationError) -> SerializationError:
    """Re-word a pickling failure to name the culprit: the function, an argument or a keyword."""
    import cloudpickle

    parts: list[tuple[str, Any]] = [(f"function {_fn_name(fn)!r}", fn)]
    parts += [(f"argument {i} ({type(a).__name__})", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r} ({type(v).__name__})", v) for k, v in kwargs.items()]
    for label, obj in parts:
        try:
            cloudpickle.dumps(obj, protocol=5, buffer_callback=lambda b: False)
        except Exception as inner:  # noqa: BLE001
            return SerializationError(f"cannot pickle {label}: {type(inner).__name__}: {inner}", "argument")
    return exc


def _apply_chunk(fn: Callable, chunk: list) -> list:
    return [fn(item) for item in chunk]


def _apply_chunk_star(fn: Callable, chunk: list[tuple]) -> list:
    return [fn(*items) for items in chunk]


def _chunks(iterable: Iterable[Any], size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _ordered(futures: list[Future]) -> Iterator[Any]:
    try:
        for fut in futures:
            yield from fut.result()
    finally:
        for fut in futures:
            fut.cancel()


def _unordered(futures: list[Future]) -> Iterator[Any]:
    from concurrent.futures import as_completed

    try:
        for fut in as_completed(futures):
            yield from fut.result()
    finally:
        for fut in futures:
            fut.cancel()


def _outcome(msg: tuple, writable: bool, on_release: Callable[[str], None]) -> tuple[Any, bool]:
    """``(value, failed)`` of a worker's outcome message: the result, or the exception to raise."""
    if msg[0] == "val":
        return msg[2], False
    if msg[0] == "ok":
        try:
            return loads(msg[2], what="result", writable=writable, on_release=on_release), False
        except SerializationError as exc:
            return exc, True
    if msg[0] == "err":
        return _remote_exception(*msg[2:6]), True
    return None, False


def _remote_exception(data: bytes | None, type_name: str, message: str, tb: str) -> BaseException:
    """The exception a worker reported: itself if it unpickles, else a RemoteError; with its traceback."""
    exc: BaseException
    try:
        exc = pickle.loads(data) if data is not None else RemoteError(type_name, message, tb)
    except Exception:  # noqa: BLE001 - the class may not exist here
        exc = RemoteError(type_name, message, tb)
    if not isinstance(exc, RemoteError):
        exc.__cause__ = RemoteTraceback(tb)
    return exc
