"""Shutdown modes (warm / soft / hard), escalation, and the OS signal handlers."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from .._backend import TaskState
from .._events import WorkerEventType
from .._future import Future
from ._config import WorkerShutdownMode

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

SIGNAL_MODES = {"SIGINT": WorkerShutdownMode.SOFT, "SIGTERM": WorkerShutdownMode.WARM, "SIGQUIT": WorkerShutdownMode.HARD}


def request(worker: Worker, mode: WorkerShutdownMode) -> Future[None]:
    """Start (or escalate to HARD) the worker's shutdown; return the Future of its completion."""
    from ._worker import WorkerState

    with worker._state_lock:
        if worker._shutdown_future is not None:
            if mode is WorkerShutdownMode.HARD and worker._shutdown_mode is not WorkerShutdownMode.HARD:
                worker._shutdown_mode = WorkerShutdownMode.HARD
                worker._escalate.set()
                worker._active.notify()
            return worker._shutdown_future
        future: Future[None] = Future(debug_name=f"shutdown {worker.worker_id}")
        future.add_done_callback(lambda _: worker._stopped.set())  # ends Worker.wait()
        worker._shutdown_future = future
        worker._shutdown_mode = mode
        if worker.state is WorkerState.CREATED:
            worker.state = WorkerState.STOPPED
            worker.events.close()
            future._settle(None)
            return future
        worker.state = WorkerState.STOPPING
    if threading.current_thread() is threading.main_thread():
        uninstall_signal_handlers(worker)
    threading.Thread(target=_run, args=(worker, mode, future), name=f"stemnb-{worker.worker_id}-shutdown", daemon=True).start()
    return future


def _run(worker: Worker, mode: WorkerShutdownMode, future: Future[None]) -> None:
    from . import _control
    from ._outcome import requeue_unstarted
    from ._worker import WorkerState

    try:
        worker.emit(WorkerEventType.WORKER_STOPPING, data={"mode": mode.value})
        requeue_unstarted(worker, worker._consumer.stop_receiving())
        _control.stop(worker)
        if mode is WorkerShutdownMode.WARM:
            _wait_drained(worker, None)
        elif mode is WorkerShutdownMode.SOFT:
            for task in worker._active.running():
                worker._revocations.terminate_task(task, "worker soft shutdown")
            _wait_drained(worker, worker.lifecycle_config.soft_grace_period)
        _hard_stop(worker)
        worker._revocations.stop()
        worker._signals.close()
        worker._timers.close()  # no heartbeat after this: withdraw the last one
        _withdraw_heartbeat(worker)
        uninstall_signal_handlers(worker)
        with worker._state_lock:
            worker.state = WorkerState.STOPPED
        final = worker._shutdown_mode or mode
        worker.emit(WorkerEventType.WORKER_SHUTDOWN, data={"mode": final.value, "requested": mode.value})
        worker.events.close()
        future._settle(None)
    except BaseException as exc:  # noqa: BLE001 - reported through the future
        log.exception("worker %s: shutdown failed", worker.worker_id)
        future._settle(exception=exc)


def _withdraw_heartbeat(worker: Worker) -> None:
    """Drop the worker's heartbeat from the backend, so it stops counting as live at once (best
    effort: otherwise it expires with its TTL)."""
    try:
        worker.backend.remove_worker_heartbeat(worker.worker_id)
    except Exception:  # noqa: BLE001 - e.g. the backend was closed or is unreachable
        log.debug("worker %s: could not withdraw its heartbeat", worker.worker_id, exc_info=True)


def _wait_drained(worker: Worker, timeout: float | None) -> None:
    """Wait until no delivery is held, ``timeout`` passes, or a HARD request escalates."""
    worker._active.wait_empty(timeout, stop=worker._escalate)


def _hard_stop(worker: Worker) -> None:
    """Requeue every held delivery, stop isolate tasks by ending their processes, close the pool."""
    from ._outcome import status_meta

    held = worker._active.snapshot()
    for task in held:
        task.abandoned = True
        requeued = worker.broker.nack(task.delivery, requeue=True)
        if requeued and task.running:  # deliberately handed back: queued again, not "interrupted"
            meta = status_meta(worker, task, requeued_by=worker.worker_id)
            worker.backend.set(task.id, TaskState.QUEUED, meta=meta, attempt=task.envelope.attempt)
    for task in held:
        if task.future is not None:
            task.future.cancel()
    pool = worker._pool
    if pool is not None:
        pool.close(cancel_pending=True, timeout=0)
    # isolate runs are settled now; inline runs cannot be interrupted and were requeued


def _in_kernel() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def install_signal_handlers(worker: Worker) -> None:
    """Install SIGINT -> soft, SIGTERM -> warm, SIGQUIT -> hard, only when allowed.

    Skipped inside a notebook kernel (its SIGINT is the interrupt button), off the main thread
    (Python refuses), and when ``lifecycle.install_signal_handlers`` is False.
    """
    worker._signal_previous = {}
    if not worker.lifecycle_config.install_signal_handlers or _in_kernel():
        return
    if threading.current_thread() is not threading.main_thread():
        return
    for name, mode in SIGNAL_MODES.items():
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        worker._signal_previous[signum] = signal.signal(signum, _handler(worker, mode))


def _handler(worker: Worker, mode: WorkerShutdownMode):
    def on_signal(signum: int, frame: object) -> None:
        worker.shutdown(mode)

    return on_signal


def uninstall_signal_handlers(worker: Worker) -> None:
    """Restore the handlers that were there before (only possible from the main thread)."""
    previous = getattr(worker, "_signal_previous", {})
    if not previous:
        return
    if threading.current_thread() is not threading.main_thread():
        return  # restored by the next shutdown()/close() call made on the main thread
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    previous.clear()
