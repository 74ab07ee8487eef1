"""``stemnb.run``: ``Isolate.run`` on a default pool created on first use and reused after."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from ._future import Future
from ._options import Seconds
from ._pool import IsolatePool

_lock = threading.Lock()
_default: IsolatePool | None = None
_default_pid: int | None = None


def default_pool() -> IsolatePool:
    """The process's default pool (``loky.cpu_count()`` processes), started on first use.

    A closed default pool is replaced by a fresh one.
    """
    global _default, _default_pid
    with _lock:
        if _default is None or _default.closed or _default_pid != os.getpid():
            _default = IsolatePool(debug_name="default")
            _default_pid = os.getpid()
        return _default


def run(fn: Callable[..., Any], /, *args: Any, timeout: Seconds | None = None,
        debug_name: str | None = None, **kwargs: Any) -> Future:
    """Run ``fn(*args, **kwargs)`` in a warm process of the default pool (Dart's ``Isolate.run``).

    Returns a :class:`~stemnb.Future` (``await`` it in a notebook, ``.result()`` in a script).
    The function may be a lambda or closure defined in the notebook. ``timeout`` ends the call's
    process after that many seconds of running (the future raises ``TimeoutError``). Exceptions
    re-raise with their original type and the remote traceback as ``__cause__``.

    Raises:
        TypeError: ``fn`` is not callable, or ``timeout`` is not seconds (a number or a timedelta).
        ValueError: ``timeout`` is not positive and finite.
        SerializationError: the function or an argument cannot be pickled.
    """
    return default_pool().run(fn, *args, timeout=timeout, debug_name=debug_name, **kwargs)
