"""``python -m stemnb``: the tour with no arguments; ``worker APP`` runs a Stem worker as its own
program; ``control COMMAND`` asks running workers things or tells them to act (``_cli_control``).

``python -m stemnb worker APP`` is stemnb's ``celery -A app worker``: it builds a :class:`Worker`
on the Redis broker and result backend, starts it, prints one readiness line to stderr and blocks
until the worker stops. APP is ``package.module:attr`` naming a :class:`TaskRegistry` or a
:class:`Worker`, or a zero-argument callable returning either. A registry gets a worker built from
the options; a Worker is run as it is, so the worker-building options are refused beside it.

Signals are the Worker's own (SIGINT soft, SIGTERM warm, SIGQUIT hard shutdown); once a shutdown
runs, any of them again makes it hard. Exit status: 0 after a clean stop, 1 when the broker or
backend cannot be reached or the shutdown failed, 2 for bad input (one line on stderr, no traceback).
``control`` exits as ``_cli_control`` describes.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ._exceptions import ClosedError
from ._priority import DEFAULT_NICE, check_nice

if TYPE_CHECKING:
    from ._registry import TaskRegistry
    from ._worker import Worker

BROKER_ENV = "STEMNB_BROKER_URL"
BACKEND_ENV = "STEMNB_BACKEND_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_SCHEMES = ("redis", "rediss", "unix")
MIB = 1024 * 1024
BUILD_OPTIONS = (
    "broker",
    "backend",
    "namespace",
    "concurrency",
    "queues",
    "prefetch_multiplier",
    "max_tasks_per_isolate",
    "max_memory_per_isolate",
    "isolate_nice",
    "autoscale",
    "name",
)
"""The options that build a Worker: refused when APP is a Worker already."""


class UsageError(Exception):
    """Bad input on the command line: reported in one line, exit status 2."""


class StartError(Exception):
    """The worker could not start (e.g. Redis does not answer): reported in one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m stemnb [worker APP [options]]``."""
    parser = _Parser(
        prog="python -m stemnb", description="With no command: a two-minute tour of stemnb."
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    worker = commands.add_parser(
        "worker",
        help="run a Stem worker as its own program",
        description="Run a Stem worker on a Redis broker and result backend until a signal stops it.",
    )
    worker.add_argument(
        "app",
        metavar="APP",
        help="package.module:attr naming a TaskRegistry or a Worker "
        "(or a zero-argument callable returning one)",
    )
    worker.add_argument(
        "--broker", metavar="URL", help=f"broker URL (default: ${BROKER_ENV}, else {DEFAULT_URL})"
    )
    worker.add_argument(
        "--backend",
        metavar="URL",
        help=f"result backend URL (default: ${BACKEND_ENV}, else the broker URL)",
    )
    worker.add_argument(
        "--namespace",
        metavar="NAME",
        help="key prefix of the broker and backend in Redis (default: stemnb)",
    )
    worker.add_argument(
        "-c",
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="tasks run at once (default: CPUs)",
    )
    worker.add_argument(
        "-Q",
        "--queue",
        dest="queues",
        action="append",
        metavar="NAME",
        help="queue to consume; repeat it or give a comma list (default: default)",
    )
    worker.add_argument(
        "--prefetch-multiplier",
        type=_positive_int,
        metavar="N",
        help="deliveries held per slot (default: 2)",
    )
    worker.add_argument(
        "--max-tasks-per-isolate",
        type=_positive_int,
        metavar="N",
        help="replace an isolate process after N tasks (Celery's --max-tasks-per-child)",
    )
    worker.add_argument(
        "--max-memory-per-isolate",
        type=_positive_int,
        metavar="MIB",
        help="replace an isolate process once its real RSS passes MIB mebibytes, after its task",
    )
    worker.add_argument(
        "--isolate-nice",
        type=_nice,
        metavar="N",
        help="run the isolates N steps below the worker's CPU priority, 0-19 (default: 5; 0 keeps the worker's)",
    )
    worker.add_argument(
        "--autoscale",
        type=_autoscale_bounds,
        metavar="MAX[,MIN]",
        help="grow to MAX concurrent tasks with the backlog and shrink to MIN (default 1) when idle",
    )
    worker.add_argument("--name", metavar="ID", help="the worker id (Worker consumer_name)")
    worker.add_argument(
        "--wait-for-broker",
        type=_positive_float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying to reach Redis for up to SECONDS before giving up, for a program that may "
        "start before its Redis (default: give up at once)",
    )
    worker.add_argument(
        "-l",
        "--loglevel",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        metavar="LEVEL",
        help="logging level: debug, info, warning (default), error or critical",
    )
    from ._cli_control import add_parser

    add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, tour: Callable[[], None] | None = None) -> int:
    """Run the command of ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    With no command, runs ``tour``. Errors are printed as one line on stderr.
    """
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        if args.command is None:
            if tour is not None:
                tour()
            return 0
        if args.command == "control":
            return run_control(args)
        return run_worker(args)
    except UsageError as exc:
        _say(f"stemnb: error: {exc}")
        return 2
    except StartError as exc:
        _say(f"stemnb: error: {exc}")
        return 1


def run_worker(args: argparse.Namespace) -> int:
    """Start the worker ``args`` describe, block until it stops, and return the exit status.

    Raises:
        UsageError: APP or an option is wrong.
        StartError: the broker or backend does not answer.
    """
    logging.basicConfig(
        level=args.loglevel,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ._worker import WorkerShutdownMode

    app = load_app(args.app)
    worker, where, owned = _worker_for(app, args)
    try:
        _escalate_repeated_signals(worker)
        _announce_stopping(worker)
        try:
            worker.start()
        except ClosedError:  # a signal stopped it before it started
            return 0
        except Exception as exc:  # noqa: BLE001 - start() stopped what it had started; say why in one line
            raise StartError(f"the worker could not start: {type(exc).__name__}: {exc}") from None
        _say(_readiness_line(worker, where))
        worker.wait()
        error = worker.shutdown(WorkerShutdownMode.WARM).exception()  # of the finished shutdown
        if error is not None:
            _say(f"stemnb: error: the worker's shutdown failed: {type(error).__name__}: {error}")
            return 1
        _say(f"stemnb worker {worker.worker_id} stopped")
        return 0
    finally:
        for part in owned:
            part.close()


def run_control(args: argparse.Namespace) -> int:
    """Send the control command ``args`` describe to the workers; return the exit status.

    Raises:
        UsageError: an option is wrong.
        StartError: the broker does not answer.
    """
    from ._cli_control import run_control as run

    url = _check_url("--broker", args.broker or os.environ.get(BROKER_ENV) or DEFAULT_URL)
    namespace = args.namespace or "stemnb"
    try:
        from ._brokers.redis import RedisBroker
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    broker = _open("broker", url, RedisBroker, namespace, lambda b: b.pending_count("default"))

    backend_url = os.environ.get(BACKEND_ENV) or url

    def live_workers() -> int:
        """Workers of the control namespace with a live heartbeat (0 when it cannot be told)."""
        from ._backends.redis import RedisResultBackend

        try:
            backend = RedisResultBackend(backend_url, namespace=namespace)
        except ValueError:
            return 0
        try:
            return len(backend.list_worker_heartbeats(args.heartbeat_namespace))
        except Exception:  # noqa: BLE001 - then replies are collected until the timeout
            return 0
        finally:
            backend.close()

    def revoke_store() -> Any:
        from ._redis_stores import RedisRevokeStore

        return RedisRevokeStore(url, namespace=namespace)

    try:
        return run(args, broker, live_workers, revoke_store, _say)
    finally:
        broker.close()


def load_app(spec: str) -> TaskRegistry | Worker:
    """Import ``package.module:attr`` and return the TaskRegistry or Worker it names or builds.

    Raises UsageError (naming the problem) when the spec is malformed, the module does not import,
    the attribute is missing, calling it fails or it gives something else.
    """
    from ._registry import TaskRegistry
    from ._worker import Worker

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"APP must look like 'package.module:attr', got {spec!r}")
    module = _import(module_name)
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise UsageError(
                f"APP {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if callable(value) and not isinstance(value, (TaskRegistry, Worker)):
        try:
            value = value()
        except Exception as exc:  # the user's factory: report it in one line
            raise UsageError(
                f"APP {spec!r}: calling it failed: {type(exc).__name__}: {exc}"
            ) from None
    if not isinstance(value, (TaskRegistry, Worker)):
        raise UsageError(
            f"APP {spec!r} is of type {type(value).__name__}, not a TaskRegistry or a Worker"
        )
    return value


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - ImportError, or anything the user's module raised
        raise UsageError(
            f"cannot import APP module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None


def _worker_for(
    app: TaskRegistry | Worker, args: argparse.Namespace
) -> tuple[Worker, str, list[Any]]:
    """Return (the worker to run, where it consumes for the readiness line, the parts to close)."""
    from ._worker import Worker, WorkerState

    if isinstance(app, Worker):
        if app.state in (WorkerState.STOPPING, WorkerState.STOPPED):
            raise UsageError(f"APP {args.app!r} is a Worker that is {app.state.value}")
        given = [name for name in BUILD_OPTIONS if getattr(args, name) is not None]
        if given:
            flags = ", ".join(
                "--" + ("queue" if n == "queues" else n.replace("_", "-")) for n in given
            )
            raise UsageError(f"APP {args.app!r} is a Worker already; {flags} cannot change it")
        return app, f"broker={type(app.broker).__name__}", []
    return _build_worker(app, args)


def _build_worker(
    registry: TaskRegistry, args: argparse.Namespace
) -> tuple[Worker, str, list[Any]]:
    from ._worker import RoutingSubscription, Worker, WorkerAutoscaleConfig, WorkerLifecycleConfig

    broker_url = _check_url("--broker", args.broker or os.environ.get(BROKER_ENV) or DEFAULT_URL)
    backend_url = _check_url("--backend", args.backend or os.environ.get(BACKEND_ENV) or broker_url)
    queues = _queue_names(args.queues)
    namespace = args.namespace or "stemnb"
    broker, backend = _open_redis(broker_url, backend_url, namespace, queues[0], args.wait_for_broker)
    from ._redis_stores import RedisRevokeStore
    from ._worker import RedisHeartbeatTransport

    # revocations live beside the tasks, so they reach every worker program, also ones started later
    revocations = RedisRevokeStore(broker_url, namespace=namespace)
    # heartbeats are also published live on the broker's Redis (topic `stem:heartbeat:stem`)
    heartbeats = RedisHeartbeatTransport(broker_url)
    worker = Worker(
        broker,
        registry,
        backend,
        revoke_store=revocations,
        heartbeat_transport=heartbeats,
        queue=queues[0],
        subscription=RoutingSubscription(tuple(queues)),
        consumer_name=args.name,
        concurrency=args.concurrency,
        prefetch_multiplier=args.prefetch_multiplier or 2,
        lifecycle=WorkerLifecycleConfig(
            max_tasks_per_isolate=args.max_tasks_per_isolate,
            max_memory_per_isolate_bytes=None
            if args.max_memory_per_isolate is None
            else args.max_memory_per_isolate * MIB,
            isolate_nice=DEFAULT_NICE if args.isolate_nice is None else args.isolate_nice,
        ),
        autoscale=None
        if args.autoscale is None
        else WorkerAutoscaleConfig(
            enabled=True, max_concurrency=args.autoscale[0], min_concurrency=args.autoscale[1]
        ),
    )
    return worker, f"broker={_redact(broker_url)} namespace={namespace}", [broker, backend, revocations, heartbeats]


def _open_redis(
    broker_url: str, backend_url: str, namespace: str, queue: str, wait: float = 0.0
) -> tuple[Any, Any]:
    """Open the Redis broker and backend and check that both answer (trying for up to ``wait``
    seconds in all).

    Raises UsageError for a URL Redis rejects (or no redis package), StartError when it does not answer.
    """
    try:
        from ._backends.redis import RedisResultBackend
        from ._brokers.redis import RedisBroker
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    deadline = time.monotonic() + wait
    broker = _open("broker", broker_url, RedisBroker, namespace, lambda b: b.pending_count(queue), deadline)
    try:
        probe_id = f"stemnb-cli-probe-{uuid.uuid4().hex}"
        backend = _open("backend", backend_url, RedisResultBackend, namespace, lambda b: b.get(probe_id), deadline)
    except BaseException:
        broker.close()
        raise
    return broker, backend


def _open(
    what: str, url: str, cls: Any, namespace: str, probe: Callable[[Any], Any], deadline: float = 0.0
) -> Any:
    """``cls(url, namespace=namespace)``, once ``probe(part)`` shows the server answers
    (trying until the monotonic ``deadline``; by default once).

    Raises UsageError for a URL Redis rejects, StartError when it does not answer.
    """
    try:
        part = cls(url, namespace=namespace)
    except ValueError as exc:
        raise UsageError(f"--{what} {_redact(url)}: {exc}") from None
    try:
        _probe(what, url, lambda: probe(part), deadline)
    except BaseException:
        part.close()
        raise
    return part


def _probe(what: str, url: str, call: Callable[[], Any], deadline: float) -> None:
    """Run ``call`` until it succeeds, trying again (after 0.1 s, doubling to 1 s) until
    ``deadline``; says once on stderr that it waits."""
    pause, waiting = 0.1, False
    while True:
        try:
            call()
            return
        except Exception as exc:  # noqa: BLE001 - any client error means the server is not usable
            left = deadline - time.monotonic()
            if left <= 0:
                raise StartError(
                    f"the {what} at {_redact(url)} does not answer: {type(exc).__name__}: {exc}"
                ) from None
            if not waiting:
                _say(f"stemnb: waiting up to {left:.1f} s for the {what} at {_redact(url)} ({type(exc).__name__})")
                waiting = True
        time.sleep(min(pause, max(left, 0.0)))
        pause = min(2 * pause, 1.0)


def _check_url(flag: str, url: str) -> str:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        expected = ", ".join(f"{s}://" for s in URL_SCHEMES)
        raise UsageError(f"{flag} must be a {expected} URL, got {_redact(url)!r}")
    return url


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (it goes to logs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _queue_names(values: Sequence[str] | None) -> list[str]:
    """``-Q a,b -Q c`` -> ["a", "b", "c"] (first one primary, duplicates dropped)."""
    names: list[str] = []
    for value in values or ["default"]:
        for name in value.split(","):
            name = name.strip()
            if not name:
                raise UsageError(f"argument -Q/--queue: empty queue name in {value!r}")
            if name not in names:
                names.append(name)
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _nice(text: str) -> int:
    try:
        return check_nice(int(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 19, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _autoscale_bounds(text: str) -> tuple[int, int]:
    """``"MAX"`` or ``"MAX,MIN"`` (Celery's order) -> (MAX, MIN); MIN defaults to 1 and may not pass MAX."""
    parts = text.split(",")
    try:
        bounds = [int(p) for p in parts]
    except ValueError:
        bounds = []
    if len(bounds) not in (1, 2) or min(bounds) < 1:
        raise argparse.ArgumentTypeError(f"must be MAX or MAX,MIN with integers >= 1, got {text!r}")
    maximum, minimum = bounds[0], bounds[1] if len(bounds) == 2 else 1
    if minimum > maximum:
        raise argparse.ArgumentTypeError(f"MIN {minimum} is above MAX {maximum}")
    return maximum, minimum


def _escalate_repeated_signals(worker: Worker) -> None:
    """Before ``start()``: make SIGINT/SIGTERM/SIGQUIT escalate to a hard shutdown once one runs.

    ``start()`` installs the worker's own handlers over these and its shutdown puts these back,
    so the first signal means what the Worker says and a repeated one stops it hard (instead of
    a KeyboardInterrupt or death by SIGTERM that would leave the pool's processes behind).
    """
    from ._worker import WorkerShutdownMode, WorkerState
    from ._worker._shutdown import SIGNAL_MODES

    def on_signal(signum: int, frame: object) -> None:
        mode = SIGNAL_MODES[signal.Signals(signum).name]
        worker.shutdown(
            WorkerShutdownMode.HARD if worker.state is not WorkerState.RUNNING else mode
        )

    for name in SIGNAL_MODES:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, on_signal)


def _announce_stopping(worker: Worker) -> None:
    """Print a line to stderr when the worker starts to stop, naming the shutdown mode."""
    from ._events import WorkerEventType

    def on_event(event: Any) -> None:
        _say(f"stemnb worker {worker.worker_id} stopping: {event.data.get('mode')} shutdown")

    worker.events._listen(on_event, [WorkerEventType.WORKER_STOPPING], quick=True)  # prints a line: never waits


def _readiness_line(worker: Worker, where: str) -> str:
    queues = ",".join(worker.subscription_queues)
    return (
        f"stemnb worker {worker.worker_id} ready: queues={queues} {where} "
        f"concurrency={worker.active_concurrency} tasks={len(worker.registry)} pid={os.getpid()}"
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
