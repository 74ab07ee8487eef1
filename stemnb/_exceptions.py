"""The stemnb exception tree.

Every error stemnb raises on its own account derives from :class:`StemnbError`::

    StemnbError
    ├── SerializationError (TypeError)     an argument, result or message cannot be pickled
    ├── RemoteError                        a remote exception that could not be sent as itself
    ├── IsolateExitedError                 the process running a call or isolate ended
    ├── ClosedError (RuntimeError)         the pool, port or isolate is closed / killed
    ├── CapabilityError (ValueError)       resume() with a capability that does not pause it
    ├── SharedMemoryError (OSError)        a shared-memory segment could not be made or mapped
    └── TaskError                          the task-queue half (stemnb's Stem worker)
        ├── TaskRevokedError               a task was revoked while queued or running
        ├── TaskTimeLimitError (TimeoutError)  a task exceeded its hard time limit
        ├── RateLimitSpecError (ValueError)    a rate string such as "10/s" cannot be parsed
        ├── SignatureError                 a task's payload signature does not verify
        ├── EncodingError (TypeError)      task args or result cannot be encoded/decoded
        └── UnknownTaskError (KeyError)    no handler is registered under that name

A remote exception that *can* be pickled re-raises in the caller with its original type; its
remote traceback is attached as ``__cause__`` (a :class:`RemoteTraceback`). Timeouts raise the
builtin :class:`TimeoutError` and cancellations :class:`concurrent.futures.CancelledError`, as
``concurrent.futures`` does.
"""

from __future__ import annotations

import signal as _signal


class StemnbError(Exception):
    """Root of every error stemnb raises on its own account."""


class SerializationError(StemnbError, TypeError):
    """An argument, result or port message cannot be pickled or unpickled.

    ``what`` names the object's role ("argument", "result", "message", ...).
    """

    def __init__(self, message: str, what: str = "object") -> None:
        super().__init__(message)
        self.what = what

    def __reduce__(self):  # keep ``what`` across processes
        return (type(self), (self.args[0], self.what))


class RemoteTraceback(Exception):
    """Carries a remote traceback's text; attached as ``__cause__`` of re-raised errors."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(StemnbError):
    """A remote exception that could not be pickled, described by its type, message and traceback."""

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __reduce__(self):
        return (type(self), (self.type_name, self.message, self.traceback))


class IsolateExitedError(StemnbError):
    """The process running a call or an isolate ended before it answered.

    ``exitcode`` is the process exit status (negative for a signal, as in ``multiprocessing``);
    ``signal`` is the signal number when a signal ended it, else ``None``.
    """

    def __init__(self, message: str, exitcode: int | None = None, pid: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.pid = pid

    @property
    def signal(self) -> int | None:
        return -self.exitcode if self.exitcode is not None and self.exitcode < 0 else None

    @classmethod
    def for_exit(cls, what: str, pid: int | None, exitcode: int | None) -> IsolateExitedError:
        """Build the error for ``what`` (e.g. "isolate 'w1'") whose process ended with ``exitcode``."""
        if exitcode is None:
            how = "ended (exit status unknown)"
        elif exitcode < 0:
            try:
                name = _signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            how = f"was killed by {name}"
        else:
            how = f"exited with code {exitcode}"
        return cls(f"{what} (pid {pid}) {how}", exitcode=exitcode, pid=pid)

    def __reduce__(self):
        return (type(self), (self.args[0], self.exitcode, self.pid))


class ClosedError(StemnbError, RuntimeError):
    """The pool, port, isolate or worker is closed (or killed) and cannot take this call."""


class CapabilityError(StemnbError, ValueError):
    """A capability was used that does not pause this isolate."""


class SharedMemoryError(StemnbError, OSError):
    """A shared-memory segment could not be created or mapped."""


class TaskError(StemnbError):
    """Root of the task-queue (Stem worker) errors."""


class TaskRevokedError(TaskError):
    """A task was revoked (``terminate`` revocations stop it while it runs)."""


class TaskTimeLimitError(TaskError, TimeoutError):
    """A task exceeded its hard time limit; its process was ended."""


class RateLimitSpecError(TaskError, ValueError):
    """A rate-limit string (``"10/s"``, ``"100/m"``, ``"1000/h"``) cannot be parsed."""


class SignatureError(TaskError):
    """A task envelope's signature is missing, unknown or does not verify."""


class EncodingError(TaskError, TypeError):
    """Task arguments or a result cannot be encoded or decoded by the chosen encoder."""


class UnknownTaskError(TaskError, KeyError):
    """No task handler is registered under the given name."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class SharedMemoryWarning(UserWarning):
    """Shared memory was unavailable (``/dev/shm`` too small or full); data went through a pipe."""


class MalformedEnvelopeError(TaskError, ValueError):
    """A task envelope (or its dict form) is missing a field or has an invalid value."""


class TaskRetryExhaustedError(TaskError):
    """A task asked for a retry (``context.retry()``) after its retries were used up."""


class TaskInterruptedError(TaskError):
    """A task's previous run ended with its worker (redelivered under ``TaskRecoveryPolicy.RETRY``)."""
