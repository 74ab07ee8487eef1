"""The Stem worker, split by concept (see ``_worker.py`` for the map)."""

from ._config import (
    ObservabilityConfig,
    RoutingSubscription,
    WorkerAutoscaleConfig,
    WorkerLifecycleConfig,
    WorkerShutdownMode,
)
from ._control import ControlClient
from ._heartbeat import (
    HeartbeatTransport,
    InMemoryHeartbeatTransport,
    NoopHeartbeatTransport,
    RedisHeartbeatTransport,
)
from ._metrics import WorkerMetrics
from ._worker import Worker, WorkerState

__all__ = [
    "ControlClient",
    "HeartbeatTransport",
    "InMemoryHeartbeatTransport",
    "NoopHeartbeatTransport",
    "ObservabilityConfig",
    "RedisHeartbeatTransport",
    "RoutingSubscription",
    "Worker",
    "WorkerAutoscaleConfig",
    "WorkerLifecycleConfig",
    "WorkerMetrics",
    "WorkerShutdownMode",
    "WorkerState",
]
