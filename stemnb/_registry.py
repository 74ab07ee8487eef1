"""Task handlers and the registry that maps task names to them."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ._exceptions import UnknownTaskError
from ._options import TaskOptions

TaskFunction = Callable[[Any, Any], Any]
"""``fn(context, args)``: sync, or ``async def``; its return value is the task result."""


class TaskHandler:
    """A task function with its options.

    ``isolate=True`` (the default, as Stem's FunctionTaskHandler) runs the function in a pool
    process; ``isolate=False`` runs it inline in a worker thread. ``args_encoder`` /
    ``result_encoder`` override the worker's encoders for this task. Raises TypeError when ``fn``
    is not callable or ``options`` is not a TaskOptions.
    """

    def __init__(
        self,
        fn: TaskFunction,
        options: TaskOptions | None = None,
        *,
        isolate: bool = True,
        args_encoder: Any = None,
        result_encoder: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"task function must be callable, got {fn!r}")
        if options is None:
            options = TaskOptions()
        if not isinstance(options, TaskOptions):
            raise TypeError(f"options must be a TaskOptions, got {type(options).__name__}")
        self.fn = fn
        self.options = options
        self.isolate = bool(isolate)
        self.args_encoder = args_encoder
        self.result_encoder = result_encoder
        self.metadata = dict(metadata or {})

    @classmethod
    def inline(cls, fn: TaskFunction, options: TaskOptions | None = None, **kwargs: Any) -> TaskHandler:
        """Build a handler that runs in a worker thread instead of a pool process."""
        return cls(fn, options, isolate=False, **kwargs)

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)

    def __call__(self, context: Any, args: Any) -> Any:
        return self.fn(context, args)

    def __repr__(self) -> str:
        where = "isolate" if self.isolate else "inline"
        return f"<TaskHandler {getattr(self.fn, '__qualname__', self.fn)!r} {where}>"


class TaskRegistry:
    """Names mapped to :class:`TaskHandler` objects; thread-safe."""

    def __init__(self) -> None:
        self._handlers: dict[str, TaskHandler] = {}
        self._lock = threading.Lock()

    def register(self, name: str, handler: TaskHandler | TaskFunction, *, replace: bool = True) -> TaskHandler:
        """Register ``handler`` (or a bare function, wrapped with default options) under ``name``.

        Returns the handler. Raises ValueError for an empty name, or when ``replace`` is False and
        the name is taken.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        if not isinstance(handler, TaskHandler):
            handler = TaskHandler(handler)
        with self._lock:
            if not replace and name in self._handlers:
                raise ValueError(f"a task named {name!r} is already registered")
            self._handlers[name] = handler
        return handler

    def task(
        self, name: str | None = None, *, isolate: bool = True, **options: Any
    ) -> Callable[[TaskFunction], TaskHandler]:
        """Decorator registering a function under ``name`` (default: its ``__name__``).

        ``options`` are :class:`TaskOptions` fields, validated now: a bad rate string raises
        RateLimitSpecError at registration. Returns the TaskHandler, which stays callable.
        """
        task_options = TaskOptions(**options)

        def decorate(fn: TaskFunction) -> TaskHandler:
            return self.register(name or fn.__name__, TaskHandler(fn, task_options, isolate=isolate))

        return decorate

    def get(self, name: str) -> TaskHandler:
        """Return the handler for ``name``. Raises UnknownTaskError when none is registered."""
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownTaskError(f"no task handler registered under {name!r}") from None

    def resolve(self, name: str) -> TaskHandler | None:
        """Return the handler for ``name``, or None."""
        return self._handlers.get(name)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        with self._lock:
            self._handlers.pop(name, None)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._handlers)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._handlers)
