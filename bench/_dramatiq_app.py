"""The Dramatiq application of the task benchmark: Redis broker, Redis results backend.

Its worker runs as ``dramatiq bench._dramatiq_app --processes 2 --threads 1 -Q stemnb-bench``.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from ._taskwork import QUEUE, REDIS_URL, spin

broker = RedisBroker(url=REDIS_URL, namespace="stemnb-bench")
backend = RedisBackend(url=REDIS_URL, namespace="stemnb-bench-results")
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def noop() -> None:
    """Do nothing: measures pure queue overhead."""


@dramatiq.actor(queue_name=QUEUE, store_results=True, max_retries=0)
def busy_1ms() -> None:
    """Burn 1 ms of CPU."""
    spin(0.001)
