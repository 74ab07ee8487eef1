"""Shutdown modes (warm / soft / hard), escalation, and the OS signal handlers."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

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
    uninstall_signal_handlers(worker)  # a second signal means what it meant before the worker started
    threading.Thread(target=_run, args=(worker, mode, future), name=f"stemnb-{worker.worker_id}-shutdown", daemon=True).start()
    return future


def _run(worker: Worker, mode: WorkerShutdownMode, future: Future[None]) -> None:
    from . import _control
    from ._outcome import requeue_unstarted
    from ._worker import WorkerState

    try:
        worker.emit(WorkerEventType.WORKER_STOPPING, data={"mode": mode.value})
        requeue_unstarted(worker, worker._consumer.stop_receiving())
        requeue_unstarted(worker, worker._staging.withdraw_all())  # those that started run on
        _control.stop(worker)
        if mode is WorkerShutdownMode.WARM:
            _wait_drained(worker, None)
        elif mode is WorkerShutdownMode.SOFT:
            for task in worker._active.running() + worker._staging.started():
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
        try:
            requeued = worker.broker.nack(task.delivery, requeue=True)
            if requeued and task.running:  # deliberately handed back: queued again, not "interrupted"
                meta = status_meta(worker, task, requeued_by=worker.worker_id)
                worker.backend.set(task.id, TaskState.QUEUED, meta=meta, attempt=task.envelope.attempt)
        except Exception:  # noqa: BLE001 - unreachable: its lease brings it back; the shutdown goes on
            log.warning("worker %s: could not hand task %s back; its lease will bring it back",
                        worker.worker_id, task.id, exc_info=True)
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


# One handler per signal serves every worker started on the main thread: each worker only joins
# and leaves the list, so workers may stop in any order (restoring per-worker handlers put a stopped
# worker's handler back whenever they did not stop last-started-first). When the last one leaves,
# the handlers found before the first one are put back.
_signal_lock = threading.RLock()  # re-entrant: a signal may arrive while the main thread holds it
_signal_workers: list[Worker] = []
_signal_original: dict[int, Any] = {}


def install_signal_handlers(worker: Worker) -> None:
    """Make SIGINT -> soft, SIGTERM -> warm, SIGQUIT -> hard shutdown of ``worker``, when allowed.

    Skipped inside a notebook kernel (its SIGINT is the interrupt button), off the main thread
    (Python refuses), and when ``lifecycle.install_signal_handlers`` is False.
    """
    if not worker.lifecycle_config.install_signal_handlers or _in_kernel():
        return
    if threading.current_thread() is not threading.main_thread():
        return
    with _signal_lock:
        if worker in _signal_workers:
            return
        if not _signal_workers:
            for name in SIGNAL_MODES:
                signum = getattr(signal, name, None)
                if signum is not None:
                    _signal_original[signum] = signal.signal(signum, _on_signal)
        _signal_workers.append(worker)


def _on_signal(signum: int, frame: Any) -> None:
    """Start the signal's shutdown mode in every worker that installed it; with none left (each
    stopped off the main thread, which cannot restore handlers), restore the handlers found
    before and do what the one for ``signum`` would have done."""
    mode = SIGNAL_MODES[signal.Signals(signum).name]
    with _signal_lock:
        workers = list(_signal_workers)
        original = _signal_original.get(signum, signal.SIG_DFL)
        if not workers:
            _restore_locked()
    if workers:
        for worker in workers:
            worker.shutdown(mode)
    elif callable(original):
        original(signum, frame)
    elif original == signal.SIG_DFL:
        signal.raise_signal(signum)


def uninstall_signal_handlers(worker: Worker) -> None:
    """Stop sending signals to ``worker``; after the last such worker, restore the handlers found
    before the first (only possible on the main thread: elsewhere the next signal does it)."""
    with _signal_lock:
        if worker in _signal_workers:
            _signal_workers.remove(worker)
        if not _signal_workers and _signal_original and threading.current_thread() is threading.main_thread():
            _restore_locked()


def _restore_locked() -> None:
    """Put back the handlers found before the first worker installed its own (where nobody has
    replaced ours since). Main thread only; call with ``_signal_lock`` held."""
    for signum, handler in _signal_original.items():
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, handler)
    _signal_original.clear()
