"""The public surface: every name importable from ``stemnb``, and ``import stemnb`` stays light."""

from __future__ import annotations

import subprocess
import sys

import stemnb


def test_every_name_in_all_resolves():
    for name in stemnb.__all__:
        assert getattr(stemnb, name) is not None, name


def test_all_is_sorted_and_unique():
    assert stemnb.__all__ == sorted(set(stemnb.__all__))


def test_unknown_names_raise_attribute_error():
    try:
        stemnb.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_core_runtime_names_are_public():
    for name in ("run", "spawn", "IsolatePool", "Future", "ReceivePort", "RawReceivePort", "SendPort",
                 "Isolate", "Capability", "shared_array", "TransferableTypedData", "StemnbError"):
        assert name in stemnb.__all__


def test_worker_metrics_names_are_public():
    for name in ("WorkerMetrics", "MetricsRegistry", "MetricsSnapshot", "MetricFamily", "HistogramValue",
                 "MetricsServer", "ObservabilityConfig"):
        assert name in stemnb.__all__


def test_import_stemnb_loads_no_numpy_ipython_or_ipywidgets():
    code = ("import sys, stemnb; heavy = [m for m in ('numpy', 'IPython', 'ipywidgets', 'loky') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_script_running_an_in_memory_worker_loads_no_asyncio():
    code = (
        "import sys, stemnb\n"
        "registry = stemnb.TaskRegistry()\n"
        "registry.register('add', stemnb.TaskHandler.inline(lambda ctx, args: args['a'] + 1))\n"
        "broker, backend = stemnb.InMemoryBroker(), stemnb.InMemoryResultBackend()\n"
        "worker = stemnb.Worker(broker, registry, backend, concurrency=1)\n"
        "worker.start()\n"
        "task_id = stemnb.Stem(broker, backend, registry=registry).enqueue('add', {'a': 1})\n"
        "print(backend.wait_for(task_id, timeout=30).payload, 'asyncio' in sys.modules)\n"
        "worker.shutdown().result(30)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["2", "False"]


def test_every_exception_derives_from_the_root():
    for name in stemnb.__all__:
        obj = getattr(stemnb, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning) and name != "RemoteTraceback":
            assert issubclass(obj, stemnb.StemnbError), name
