"""Middleware: no-op hooks around enqueue, consume, execute and error handling."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("stemnb.worker")


class Middleware:
    """Base class whose hooks do nothing; override the ones you need.

    ``on_enqueue`` and ``on_consume`` run in registration order; an exception there is logged and
    contained. ``on_execute(context, call_next)`` wraps the handler: call ``call_next()`` and
    return its result (the first middleware is the outermost). ``on_error`` runs for every
    middleware on a task failure; its exceptions are logged and contained.
    """

    def on_enqueue(self, envelope: Any) -> None:
        """Called by the producer before it publishes ``envelope``."""

    def on_consume(self, delivery: Any) -> None:
        """Called by the worker when it receives ``delivery``, before any check."""

    def on_execute(self, context: Any, call_next: Callable[[], Any]) -> Any:
        """Run around the handler; must return ``call_next()``'s result (or a replacement)."""
        return call_next()

    def on_error(self, context: Any, error: BaseException) -> None:
        """Called when a task run fails (before retry / dead-letter decisions)."""


def run_hook(middleware: Sequence[Middleware], hook: str, *args: Any) -> None:
    """Call ``hook`` on each middleware in order, logging and containing errors."""
    for mw in middleware:
        try:
            getattr(mw, hook)(*args)
        except Exception:
            log.exception("middleware %r failed in %s", mw, hook)


def wraps_execute(middleware: Sequence[Middleware]) -> bool:
    """Whether any middleware has an ``on_execute`` of its own (not the base class's pass-through)."""
    return any(getattr(type(mw), "on_execute", None) is not Middleware.on_execute for mw in middleware)


def wrap_execute(middleware: Sequence[Middleware], context: Any, call: Callable[[], Any]) -> Callable[[], Any]:
    """Return ``call`` wrapped by every middleware's ``on_execute`` (first = outermost)."""
    wrapped = call
    for mw in reversed(middleware):
        wrapped = _bind(mw, context, wrapped)
    return wrapped


def _bind(mw: Middleware, context: Any, inner: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: mw.on_execute(context, inner)
