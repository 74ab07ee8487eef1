"""A small metrics registry: labelled counters, gauges and histograms, frozen snapshots and the
Prometheus text exposition format (0.0.4).

Plain stdlib and thread-safe: each metric guards its samples with its own lock, so recording from
the worker's threads never waits on a scrape of another metric. The Stem worker fills one of
these from its events (see :class:`stemnb.WorkerMetrics`); any code may register its own metrics
beside them.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)
"""Histogram upper bounds in seconds (Prometheus' defaults widened to 1 ms and 5 min); +Inf is implied."""

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

LabelKey = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HistogramValue:
    """One histogram series: cumulative ``buckets`` as ``(upper bound, count)`` pairs ending with
    ``(inf, count)``, the number of observations and their sum."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum: float


SampleValue = float | HistogramValue


@dataclasses.dataclass(frozen=True)
class MetricFamily:
    """One metric in a snapshot: its name, kind (``counter``/``gauge``/``histogram``), help text,
    label names, and ``samples`` as ``(label values, value)`` pairs in first-seen order."""

    name: str
    kind: str
    help: str
    label_names: tuple[str, ...]
    samples: tuple[tuple[LabelKey, SampleValue], ...]

    def get(self, **labels: str) -> SampleValue | None:
        """The value of the series with exactly these ``labels``, or None when it was never recorded.

        Raises ValueError unless ``labels`` names every label of the metric and no other.
        """
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} needs labels {list(self.label_names)}, got {sorted(labels)}")
        key = tuple(str(labels[n]) for n in self.label_names)
        for values, value in self.samples:
            if values == key:
                return value
        return None


@dataclasses.dataclass(frozen=True)
class MetricsSnapshot:
    """Every metric of a registry at one moment (``timestamp``, seconds since the epoch)."""

    timestamp: float
    families: tuple[MetricFamily, ...]

    def family(self, name: str) -> MetricFamily:
        """The metric called ``name``. Raises KeyError when there is none."""
        for fam in self.families:
            if fam.name == name:
                return fam
        raise KeyError(name)

    def value(self, name: str, **labels: str) -> float:
        """Sum of the counter or gauge ``name`` over the series matching ``labels`` (a subset of its
        label names; none matches every series). 0.0 when nothing matches.

        Raises KeyError for an unknown metric and TypeError for a histogram (use :meth:`histogram`).
        """
        fam = self.family(name)
        if fam.kind == "histogram":
            raise TypeError(f"{name} is a histogram; use histogram()")
        return float(sum(v for key, v in _matching(fam, labels) if isinstance(v, float)))

    def histogram(self, name: str, **labels: str) -> HistogramValue:
        """The histogram ``name`` merged over the series matching ``labels`` (as :meth:`value`).

        Raises KeyError for an unknown metric and TypeError when ``name`` is not a histogram.
        """
        fam = self.family(name)
        if fam.kind != "histogram":
            raise TypeError(f"{name} is a {fam.kind}, not a histogram")
        parts = [v for key, v in _matching(fam, labels) if isinstance(v, HistogramValue)]
        if not parts:
            return HistogramValue((), 0, 0.0)
        bounds = [b for b, _ in parts[0].buckets]
        counts = [sum(p.buckets[i][1] for p in parts) for i in range(len(bounds))]
        return HistogramValue(tuple(zip(bounds, counts, strict=True)), sum(p.count for p in parts), sum(p.sum for p in parts))


def _matching(fam: MetricFamily, labels: Mapping[str, str]) -> Iterable[tuple[LabelKey, SampleValue]]:
    unknown = set(labels) - set(fam.label_names)
    if unknown:
        raise ValueError(f"{fam.name} has no label(s) {sorted(unknown)}; its labels are {list(fam.label_names)}")
    wanted = [(fam.label_names.index(k), str(v)) for k, v in labels.items()]
    return [(key, v) for key, v in fam.samples if all(key[i] == want for i, want in wanted)]


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, label_names: Iterable[str]) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()
        self._series: dict[LabelKey, object] = {}

    def _key(self, labels: Mapping[str, object]) -> LabelKey:
        try:
            key = tuple(str(labels[n]) for n in self.label_names)
        except KeyError as exc:
            raise ValueError(f"{self.name} needs labels {list(self.label_names)}, got {sorted(labels)}") from exc
        if len(labels) != len(key):
            raise ValueError(f"{self.name} needs labels {list(self.label_names)}, got {sorted(labels)}")
        return key

    def _family(self) -> MetricFamily:
        with self._lock:
            samples = tuple((key, self._freeze(v)) for key, v in self._series.items())
        return MetricFamily(self.name, self.kind, self.help, self.label_names, samples)

    def _freeze(self, value: object) -> SampleValue:
        assert isinstance(value, float)
        return value


class Counter(_Metric):
    """A value that only goes up (per label combination). Prometheus names end in ``_total``."""

    kind = "counter"

    def inc(self, amount: float = 1.0, /, **labels: object) -> None:
        """Add ``amount`` to the series named by ``labels``. Raises ValueError for a negative
        amount or labels that differ from the counter's label names."""
        if amount < 0:
            raise ValueError(f"a counter only goes up; {self.name} got {amount!r}")
        self._add(self._key(labels), float(amount))

    def _add(self, key: LabelKey, amount: float) -> None:
        """Add to the series of label values ``key`` (in label-name order; the fast path for the
        worker, which knows its labels)."""
        with self._lock:
            self._series[key] = self._series.get(key, 0.0) + amount  # type: ignore[operator]


class Gauge(_Metric):
    """A value that goes up and down (per label combination)."""

    kind = "gauge"

    def set(self, value: float, /, **labels: object) -> None:
        """Set the series named by ``labels`` to ``value``. Raises ValueError for wrong labels."""
        key = self._key(labels)
        with self._lock:
            self._series[key] = float(value)

    def inc(self, amount: float = 1.0, /, **labels: object) -> None:
        """Add ``amount`` (may be negative) to the series named by ``labels``."""
        key = self._key(labels)
        with self._lock:
            self._series[key] = self._series.get(key, 0.0) + float(amount)  # type: ignore[operator]


class Histogram(_Metric):
    """Observations counted into cumulative buckets (per label combination), with their sum."""

    kind = "histogram"

    def __init__(self, name: str, help: str, label_names: Iterable[str], buckets: Iterable[float]) -> None:
        super().__init__(name, help, label_names)
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct finite numbers, got {list(buckets)!r}")
        self.buckets: tuple[float, ...] = tuple(bounds)

    def observe(self, value: float, /, **labels: object) -> None:
        """Record one observation of ``value`` in the series named by ``labels``."""
        self._observe(self._key(labels), value)

    def _observe(self, key: LabelKey, value: float) -> None:
        """Record ``value`` in the series of label values ``key`` (as :meth:`Counter._add`)."""
        index = bisect.bisect_left(self.buckets, value)  # bucket i counts value <= bound i
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _HistogramSeries(len(self.buckets) + 1)
            assert isinstance(series, _HistogramSeries)
            series.counts[index] += 1
            series.total += float(value)

    def _freeze(self, value: object) -> SampleValue:
        assert isinstance(value, _HistogramSeries)
        cumulative, running = [], 0
        for bound, n in zip((*self.buckets, math.inf), value.counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return HistogramValue(tuple(cumulative), running, value.total)


class _HistogramSeries:
    __slots__ = ("counts", "total")

    def __init__(self, n: int) -> None:
        self.counts = [0] * n  # per bucket, not cumulative
        self.total = 0.0


_M = TypeVar("_M", bound=_Metric)


class MetricsRegistry:
    """Holds named metrics; ``statistics()`` snapshots them, ``prometheus_text()`` renders them.

    ``on_collect(fn)`` registers a function run before every snapshot or render, to set gauges
    that are cheaper to read on demand than to track (in-flight tasks, pool size).
    """

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._collectors: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        """Register (or return the same) counter ``name``. Raises ValueError on a bad name or a
        clash with a metric of another kind or labels."""
        return self._add(Counter, name, help, labels)

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        """Register (or return the same) gauge ``name`` (errors as :meth:`counter`)."""
        return self._add(Gauge, name, help, labels)

    def histogram(
        self, name: str, help: str, labels: Iterable[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        """Register (or return the same) histogram ``name`` with ``buckets`` (upper bounds; +Inf is
        added). Errors as :meth:`counter`; ``le`` may not be a label."""
        labels = tuple(labels)
        if "le" in labels:
            raise ValueError(f"{name}: 'le' is reserved for histogram buckets")
        return self._add(Histogram, name, help, labels, tuple(buckets))

    def on_collect(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` before each snapshot or render (an exception in it propagates)."""
        with self._lock:
            self._collectors.append(fn)

    def statistics(self) -> MetricsSnapshot:
        """A frozen snapshot of every metric, after running the collect functions."""
        for fn in list(self._collectors):
            fn()
        with self._lock:
            metrics = list(self._metrics.values())
        return MetricsSnapshot(time.time(), tuple(m._family() for m in metrics))

    def prometheus_text(self) -> str:
        """Every metric in the Prometheus text exposition format 0.0.4 (content type
        :data:`PROMETHEUS_CONTENT_TYPE`)."""
        return render_prometheus(self.statistics())

    def _add(self, cls: type[_M], name: str, help: str, labels: Iterable[str], *extra: object) -> _M:
        labels = tuple(labels)
        _check_names(name, labels)
        with self._lock:
            existing = self._metrics.get(name)
            if existing is None:
                metric = cls(name, help, labels, *extra)  # type: ignore[call-arg]
                self._metrics[name] = metric
                return metric
        if not isinstance(existing, cls) or type(existing) is not cls or existing.label_names != labels:
            raise ValueError(f"metric {name} is already registered as a {existing.kind} with labels {list(existing.label_names)}")
        return existing


def _check_names(name: str, labels: tuple[str, ...]) -> None:
    if not _NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    for label in labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(f"invalid label name {label!r} for {name}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate label names for {name}: {list(labels)}")


# -- Prometheus text format 0.0.4 ---------------------------------------------------------------
def render_prometheus(snapshot: MetricsSnapshot) -> str:
    """Render ``snapshot`` in the Prometheus text exposition format 0.0.4 (ends with a newline)."""
    lines: list[str] = []
    for fam in snapshot.families:
        lines.append(f"# HELP {fam.name} {_escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for key, value in fam.samples:
            pairs = list(zip(fam.label_names, key, strict=True))
            if isinstance(value, HistogramValue):
                for bound, count in value.buckets:
                    lines.append(f"{fam.name}_bucket{_labels([*pairs, ('le', _number(bound))])} {count}")
                lines.append(f"{fam.name}_sum{_labels(pairs)} {_number(value.sum)}")
                lines.append(f"{fam.name}_count{_labels(pairs)} {value.count}")
            else:
                lines.append(f"{fam.name}{_labels(pairs)} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _labels(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in pairs) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))
