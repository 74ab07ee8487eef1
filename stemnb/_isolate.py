"""``Isolate`` and ``Capability``: handles on long-lived processes controlled like Dart isolates.

An ``Isolate`` handle can be sent to other isolates. Its methods act on the isolate's record in
the supervising process (``_isolate_supervisor``): directly there, elsewhere forwarded through a
port (``_isolate_forward``); exit listeners of a nested isolate go to the root's exit registry.
"""

from __future__ import annotations

import os
from typing import Any

import cloudpickle

from ._exceptions import ClosedError, SerializationError
from ._hub import hub
from ._ports import SendPort

_REGISTRY_METHODS = {"add_on_exit_listener": "add", "remove_on_exit_listener": "remove", "is_alive": "is_alive"}


class Capability:
    """An unforgeable token; pausing with it means only it can resume that pause."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None = None) -> None:
        self._token = token or os.urandom(16).hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Capability) and other._token == self._token

    def __hash__(self) -> int:
        return hash(self._token)

    def __reduce__(self) -> tuple:
        return (Capability, (self._token,))

    def __repr__(self) -> str:
        return f"<stemnb.Capability {self._token[:6]}…>"


class Isolate:
    """A handle on a spawned isolate (or on the current process, via :meth:`current`)."""

    IMMEDIATE = "immediate"
    BEFORE_NEXT_EVENT = "before_next_event"

    def __init__(self, supervisor: SendPort | None, isolate_id: int, pid: int, debug_name: str,
                 pause_capability: Capability | None = None, exits: str | None = None) -> None:
        self._supervisor = supervisor
        self._id = isolate_id
        self.pid = pid
        self.debug_name = debug_name
        self.pause_capability = pause_capability
        self._exits = exits  # the exit registry keeping this isolate's exit listeners, if not its supervisor

    def __reduce__(self) -> tuple:
        return (Isolate, (self._supervisor, self._id, self.pid, self.debug_name, self.pause_capability,
                          self._exits))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Isolate) and (self._supervisor, self._id, self.pid) == (
            other._supervisor, other._id, other.pid)

    def __hash__(self) -> int:
        return hash((self._id, self.pid))

    def __repr__(self) -> str:
        return f"<stemnb.Isolate {self.debug_name!r} pid={self.pid}>"

    # -- control --------------------------------------------------------------------------------
    def pause(self, capability: Capability | None = None) -> Capability:
        """Pause the isolate's events until ``capability`` (a new one if omitted) is resumed.

        Messages sent to a paused isolate queue up; none is lost. Returns the capability.
        """
        if capability is not None and not isinstance(capability, Capability):
            raise TypeError(f"capability must be a stemnb.Capability, not {type(capability).__name__}")
        cap = capability or Capability()
        self._call("pause", cap)
        return cap

    def resume(self, capability: Capability) -> None:
        """Resume one pause. Raises CapabilityError if ``capability`` does not pause this isolate."""
        self._call("resume", capability)

    def kill(self, priority: str = BEFORE_NEXT_EVENT) -> None:
        """End the isolate: ``IMMEDIATE`` now, ``BEFORE_NEXT_EVENT`` once its current event ends."""
        if priority not in (Isolate.IMMEDIATE, Isolate.BEFORE_NEXT_EVENT):
            raise ValueError(f"priority must be Isolate.IMMEDIATE or Isolate.BEFORE_NEXT_EVENT, not {priority!r}")
        self._call("kill", priority)

    def ping(self, send_port: SendPort, response: Any = None, priority: str = IMMEDIATE) -> None:
        """Ask the isolate to send ``response`` to ``send_port`` (now, or at its next event).

        Raises TypeError for a ``send_port`` that is not a SendPort, ValueError for an unknown
        priority, SerializationError if ``response`` cannot be sent.
        """
        _check_port("send_port", send_port)
        if priority not in (Isolate.IMMEDIATE, Isolate.BEFORE_NEXT_EVENT):
            raise ValueError(f"priority must be Isolate.IMMEDIATE or Isolate.BEFORE_NEXT_EVENT, not {priority!r}")
        _check_sendable(response, "ping response")
        self._call("ping", send_port, response, priority)

    def add_error_listener(self, port: SendPort) -> None:
        """Send ``[message, stack trace, RemoteError]`` to ``port`` for each uncaught error."""
        _check_port("port", port)
        self._call("add_error_listener", port)

    def remove_error_listener(self, port: SendPort) -> None:
        self._call("remove_error_listener", port)

    def add_on_exit_listener(self, port: SendPort, response: Any = None) -> None:
        """Send ``response`` to ``port`` once the isolate has ended, however it ends.

        Raises TypeError if ``port`` is not a SendPort, SerializationError if ``response``
        cannot be sent.
        """
        _check_port("port", port)
        _check_sendable(response, "exit response")
        self._call("add_on_exit_listener", port, response)

    def remove_on_exit_listener(self, port: SendPort) -> None:
        self._call("remove_on_exit_listener", port)

    def set_errors_fatal(self, flag: bool) -> None:
        """Whether an uncaught error ends the isolate."""
        self._call("set_errors_fatal", bool(flag))

    @property
    def is_alive(self) -> bool:
        return bool(self._call("is_alive"))

    def _call(self, method: str, *args: Any) -> Any:
        if self._supervisor is None:
            what = "the main isolate" if self.debug_name == "main" else "a pool process (its pool controls it)"
            raise ClosedError(f"{self!r} is {what}; it cannot be {method}d from stemnb")
        from ._isolate_forward import registry_call, remote_call
        from ._isolate_supervisor import supervised

        if self._exits is not None and method in _REGISTRY_METHODS:
            return registry_call(self._exits, self._supervisor, self._id, method, args)
        local = supervised(self._id) if self._supervisor._address == hub().address else None
        if local is not None:
            return local.handle(method, args)
        return remote_call(self._supervisor, self._id, method, args)

    # -- the current isolate --------------------------------------------------------------------
    @staticmethod
    def current() -> Isolate:
        """The isolate this code runs in: in the notebook kernel the main isolate, in a pool process that
        process (named after its pool, e.g. ``pool1-2``)."""
        from ._isolate_child import current_handle
        from ._runtime import debug_name

        handle = current_handle()
        if handle is not None:
            return handle
        import os

        return Isolate(None, 0, os.getpid(), debug_name())

    @staticmethod
    def exit(port: SendPort | None = None, message: Any = None) -> None:
        """End the current isolate now, after sending ``message`` to ``port``.

        Raises ClosedError in the main isolate (the notebook kernel is not ended this way).
        """
        from ._isolate_child import exit_current

        exit_current(port, message)


def _check_port(label: str, port: Any) -> None:
    if not isinstance(port, SendPort):
        raise TypeError(f"{label} must be a stemnb.SendPort, not {type(port).__name__}")


def _check_sendable(obj: Any, what: str) -> None:
    """Raise SerializationError now if ``obj`` could not be sent later (buffers are not copied)."""
    if obj is None:
        return
    try:
        cloudpickle.dumps(obj, protocol=5, buffer_callback=lambda buf: False)
    except Exception as exc:
        raise SerializationError(f"cannot pickle the {what} ({type(obj).__name__}): "
                                 f"{type(exc).__name__}: {exc}", what) from exc
