"""The Celery application of the task benchmark: Redis broker and result backend, JSON payloads.

Its worker runs as ``celery -A bench._celery_app worker -P prefork -c 2 -Q stemnb-bench``.
"""

from __future__ import annotations

from celery import Celery

from ._taskwork import QUEUE, REDIS_URL, spin

app = Celery("stemnb_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


@app.task(name="noop")
def noop() -> None:
    """Do nothing: measures pure queue overhead."""


@app.task(name="busy_1ms")
def busy_1ms() -> None:
    """Burn 1 ms of CPU."""
    spin(0.001)
