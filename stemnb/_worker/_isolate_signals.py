"""The worker's end of isolate task contexts: one ReceivePort relaying their signals.

Messages (tuples, first item the kind): ``hello`` (the process's control port, for terminate
requests), ``heartbeat``, ``progress``, ``extend_lease`` and ``enqueue`` (answered on the
reply port it carries with ``(True, child id)`` or ``(False, exception)``).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")


class IsolateSignals:
    """Owns the port; created on the first isolate task, closed at shutdown."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._port: Any = None
        self._lock = threading.Lock()

    def send_port(self) -> Any:
        """The SendPort isolate contexts write to (the port is created on first use)."""
        with self._lock:
            if self._port is None:
                from .._task_pool import listening_port

                self._port = listening_port(f"{self.worker.worker_id}-task-signals", self._on_message)
            return self._port.send_port

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            port.close()

    def _on_message(self, message: Any) -> None:
        kind, task_id = message[0], message[1]
        tasks = [t for t in self.worker._active.by_task_id(task_id) if t.running and not t.settled.is_set()]
        if kind in ("enqueue", "enqueue_many"):
            return self._enqueue(message)
        if kind == "flush":
            message[2].send(True)
            return None
        if not tasks:
            return None
        task = tasks[0]
        if kind == "hello":
            task.remote_port = message[2]
            if task.control.terminate.is_set():
                message[2].send(("terminate", task_id, task.control.reason or "revoked"))
        elif kind == "heartbeat":
            task.on_heartbeat()
        elif kind == "progress":
            task.on_progress(message[2], message[3])
        elif kind == "extend_lease":
            task.on_extend_lease(message[2])
        return None

    def _enqueue(self, message: Any) -> None:
        kind, task_id, reply, name, args, options, headers, meta = message
        # enqueueing may block on a broker: keep the port's dispatch thread free
        threading.Thread(
            target=self._enqueue_now, args=(reply, name, args, options, headers, meta, kind == "enqueue_many"),
            daemon=True, name=f"stemnb-enqueue-{task_id}",
        ).start()

    def _enqueue_now(self, reply: Any, name: str, args: Any, options: Any, headers: Any, meta: Any, many: bool) -> None:
        try:
            reply.send((True, self.worker._child_enqueue(name, args, options, headers, meta, many=many)))
        except Exception as exc:  # noqa: BLE001 - handed back to the task
            try:
                reply.send((False, exc))
            except Exception:
                reply.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
