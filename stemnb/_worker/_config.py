"""Worker configuration records: autoscaling, lifecycle guards and shutdown modes."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from .._options import to_seconds
from .._priority import DEFAULT_NICE, check_nice


class WorkerShutdownMode(str, enum.Enum):
    """How :meth:`Worker.shutdown` treats running tasks."""

    WARM = "warm"
    """Stop consuming and wait for running tasks with no time limit."""
    SOFT = "soft"
    """Stop consuming, ask running tasks to stop, wait ``soft_grace_period``, then go hard."""
    HARD = "hard"
    """Stop at once: requeue every active delivery and end the isolate processes."""

    @classmethod
    def parse(cls, value: Any) -> WorkerShutdownMode:
        """Parse a control-plane mode: hard/force -> HARD, soft -> SOFT, anything else -> WARM."""
        if isinstance(value, WorkerShutdownMode):
            return value
        text = str(value or "").strip().lower()
        if text in ("hard", "force"):
            return cls.HARD
        if text == "soft":
            return cls.SOFT
        return cls.WARM


@dataclasses.dataclass(frozen=True)
class WorkerAutoscaleConfig:
    """Autoscaling of the worker's concurrency by backlog per isolate, with cooldowns.

    Durations are seconds. Stem's normalisation applies: a tick of 0.1 s or less becomes 1 s,
    non-positive cooldowns become 1 s, a non-positive idle period 30 s and a non-positive
    ``backlog_per_isolate`` 1.0. Raises ValueError for min/max/step values below 1.
    """

    enabled: bool = False
    min_concurrency: int = 1
    max_concurrency: int | None = None
    scale_up_step: int = 1
    scale_down_step: int = 1
    backlog_per_isolate: float = 1.0
    idle_period: float = 30.0
    tick: float = 2.0
    scale_up_cooldown: float = 5.0
    scale_down_cooldown: float = 10.0

    def __post_init__(self) -> None:
        for name in ("min_concurrency", "scale_up_step", "scale_down_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_concurrency is not None and self.max_concurrency < self.min_concurrency:
            raise ValueError(
                f"max_concurrency ({self.max_concurrency}) is below min_concurrency ({self.min_concurrency})"
            )
        tick = _secs(self.tick)
        set_ = object.__setattr__
        set_(self, "tick", tick if tick > 0.1 else 1.0)
        for name in ("scale_up_cooldown", "scale_down_cooldown"):
            value = _secs(getattr(self, name))
            set_(self, name, value if value > 0 else 1.0)
        idle = _secs(self.idle_period)
        set_(self, "idle_period", idle if idle > 0 else 30.0)
        if self.backlog_per_isolate <= 0:
            set_(self, "backlog_per_isolate", 1.0)

    @classmethod
    def disabled(cls) -> WorkerAutoscaleConfig:
        """The disabled profile (the default)."""
        return cls(enabled=False)

    def copy_with(self, **changes: Any) -> WorkerAutoscaleConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    replace = copy_with


@dataclasses.dataclass(frozen=True)
class WorkerLifecycleConfig:
    """Lifecycle guards: OS signal handlers, shutdown grace periods and isolate recycling.

    ``soft_grace_period`` bounds a soft shutdown before it turns hard. ``force_shutdown_after``
    (unused in Stem) is how long a terminate-revoked isolate task may take to stop cooperatively
    before its process is ended. Recycling: after ``max_tasks_per_isolate`` tasks or once the
    process's real RSS reaches ``max_memory_per_isolate_bytes``. ``isolate_nice`` (a stemnb
    addition): how many steps below the worker's CPU priority its isolates run, so that the
    worker gets a core at once to store results and feed them when they saturate the cores
    (0 keeps the worker's; see :class:`stemnb.IsolatePool`).
    """

    install_signal_handlers: bool = True
    soft_grace_period: float = 30.0
    force_shutdown_after: float = 10.0
    max_tasks_per_isolate: int | None = None
    max_memory_per_isolate_bytes: int | None = None
    isolate_nice: int = DEFAULT_NICE

    def __post_init__(self) -> None:
        check_nice(self.isolate_nice)
        object.__setattr__(self, "soft_grace_period", to_seconds("soft_grace_period", self.soft_grace_period))
        object.__setattr__(
            self, "force_shutdown_after", to_seconds("force_shutdown_after", self.force_shutdown_after)
        )
        for name in ("max_tasks_per_isolate", "max_memory_per_isolate_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value!r}")

    def copy_with(self, **changes: Any) -> WorkerLifecycleConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    replace = copy_with


def _secs(value: Any) -> float:
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)


@dataclasses.dataclass(frozen=True)
class RoutingSubscription:
    """The queues (and broadcast channels) a worker consumes; the first queue is its primary."""

    queues: tuple[str, ...] = ("default",)
    broadcasts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        queues = (self.queues,) if isinstance(self.queues, str) else tuple(self.queues)
        if not queues or not all(isinstance(q, str) and q for q in queues):
            raise ValueError(f"a subscription needs at least one non-empty queue name, got {self.queues!r}")
        object.__setattr__(self, "queues", queues)
        broadcasts = (self.broadcasts,) if isinstance(self.broadcasts, str) else tuple(self.broadcasts)
        object.__setattr__(self, "broadcasts", broadcasts)

    @classmethod
    def resolve(cls, value: Any, default_queue: str) -> RoutingSubscription:
        """Build from None (the default queue), a queue name, a list of names or a subscription."""
        if value is None:
            return cls((default_queue,))
        if isinstance(value, RoutingSubscription):
            return value
        return cls(value)


@dataclasses.dataclass(frozen=True)
class ObservabilityConfig:
    """Observability: the worker heartbeat interval (seconds) and namespace overrides, and metrics.

    ``metrics=True`` gives the worker a :class:`WorkerMetrics` (``worker.metrics``; None
    otherwise). ``metrics_port`` also serves them for Prometheus at
    ``http://metrics_host:metrics_port/metrics`` from the worker's construction until it stops
    (0 picks a free port: ``worker.metrics.server.port``). Raises ValueError for a port outside
    0-65535.
    """

    heartbeat_interval: float | None = None
    namespace: str | None = None
    metrics: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        port = self.metrics_port
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
            raise ValueError(f"metrics_port must be an int from 0 to 65535 or None, got {port!r}")

    @property
    def metrics_enabled(self) -> bool:
        """Whether the worker records metrics (``metrics`` or a ``metrics_port``)."""
        return self.metrics or self.metrics_port is not None
