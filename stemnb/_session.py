"""Session identity: which stemnb session this process belongs to and what role it plays.

The first process that uses stemnb (the notebook kernel, a script) is the session's *root*. Every
process it starts inherits the session id through the environment, so shared-memory segments and
socket addresses of one session share a prefix, and a later session can sweep what a dead one left.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

_ENV_SESSION = "STEMNB_SESSION"
_ENV_NAME = "STEMNB_ISOLATE_NAME"


@dataclass(frozen=True)
class Session:
    """The session this process belongs to.

    ``id`` is ``"<root pid>x<random hex>"``: the root pid lets a sweeper tell a dead session from a
    live one; the random part keeps two sessions of a reused pid apart.
    """

    id: str
    root_pid: int
    is_root: bool

    @property
    def prefix(self) -> str:
        """Prefix of every resource name (segments, sockets) of this session."""
        return f"stemnb-{self.id}"


_lock = threading.Lock()
_current: Session | None = None
_pid_of_current: int | None = None


def current_session() -> Session:
    """Return this process's session, creating a root session on first use."""
    global _current, _pid_of_current
    with _lock:
        if _current is None or _pid_of_current != os.getpid():
            _current = _make_session()
            _pid_of_current = os.getpid()
        return _current


def _make_session() -> Session:
    inherited = os.environ.get(_ENV_SESSION)
    if inherited and _root_pid(inherited) != os.getpid():
        return Session(inherited, _root_pid(inherited), is_root=False)
    sid = f"{os.getpid()}x{os.urandom(4).hex()}"
    os.environ[_ENV_SESSION] = sid  # children started by any means inherit it
    return Session(sid, os.getpid(), is_root=True)


def _root_pid(session_id: str) -> int:
    try:
        return int(session_id.split("x", 1)[0])
    except ValueError:
        return -1


def session_is_alive(session_id: str) -> bool:
    """Whether the root process of ``session_id`` still runs."""
    pid = _root_pid(session_id)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_is_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (zombies count as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
