"""The ``%stem`` / ``%%stem`` magics (``%load_ext stemnb``).

Subcommands::

    %%stem run [--timeout S] [--name N] [--push a b] [--pull x y]   run the cell in an isolate
    %%stem spawn NAME [--push a b]      start a long-lived isolate running the cell (reads `inbox`)
    %stem send NAME EXPR                send the value of EXPR to isolate NAME's inbox
    %stem pause|resume|kill NAME        pause, resume or kill isolate NAME
    %stem ps                            table of live isolates: name, pid, state, CPU, RSS, queued
    %stem pool [--size N]               show the pool %%stem run uses; --size gives it its own
    %stem dashboard [--pool | --worker] a live dashboard of that pool or of the %stem worker
    %stem worker start|stop|status      run a task worker from this notebook
    %stem share MODULE [...] [--undo]   send helper modules to isolates by value (share_module)
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import _html
from ._magic_cells import exec_cell, spawned_cell

CELL_ONLY = ("run", "spawn")
_OVERVIEW = __doc__ or ""


# -- one argument parser per subcommand (their help texts make up ``%stem?``) ----------------
@magic_arguments.magic_arguments(name="%stem run")
@magic_arguments.argument("--timeout", type=float, default=None, metavar="S",
                          help="hard limit in seconds: the isolate is ended and TimeoutError raised")
@magic_arguments.argument("--name", default=None, metavar="N", help="debug name of the call")
@magic_arguments.argument("--push", nargs="+", default=[], metavar="VAR",
                          help="notebook variables to copy into the isolate before the cell runs")
@magic_arguments.argument("--pull", nargs="+", default=[], metavar="VAR",
                          help="variables to copy back into the notebook after the cell ran")
def _run_parser(line: str) -> None:
    """Run the cell in an isolate of the pool; its output shows live, its errors re-raise here."""


@magic_arguments.magic_arguments(name="%stem spawn")
@magic_arguments.argument("name", help="name of the new isolate (for send/pause/resume/kill)")
@magic_arguments.argument("--push", nargs="+", default=[], metavar="VAR",
                          help="notebook variables to copy into the isolate")
def _spawn_parser(line: str) -> None:
    """Start a long-lived isolate running the cell; the cell reads its messages from `inbox`."""


@magic_arguments.magic_arguments(name="stem send")
@magic_arguments.argument("name", help="the spawned isolate")
@magic_arguments.argument("expr", nargs="+", help="a Python expression, evaluated here")
def _send_parser(line: str) -> None:
    """Send the value of EXPR to the inbox of a spawned isolate."""


@magic_arguments.magic_arguments(name="stem pause|resume|kill")
@magic_arguments.argument("name", help="the spawned isolate")
def _control_parser(line: str) -> None:
    """Pause (stop delivering messages), resume, or kill a spawned isolate."""


@magic_arguments.magic_arguments(name="stem ps")
def _ps_parser(line: str) -> None:
    """Show the live isolates: name, pid, state, CPU, RSS and messages queued."""


@magic_arguments.magic_arguments(name="stem pool")
@magic_arguments.argument("--size", type=int, default=None, metavar="N",
                          help="give the magics their own pool of N isolates, or resize it to N")
def _pool_parser(line: str) -> None:
    """Show the pool that %%stem run uses (stemnb's default pool until --size makes one)."""


@magic_arguments.magic_arguments(name="stem dashboard")
@magic_arguments.argument("--pool", action="store_true", help="show the pool even if a worker runs")
@magic_arguments.argument("--worker", action="store_true", help="show the %%stem worker")
@magic_arguments.argument("--interval", type=float, default=0.5, metavar="S",
                          help="seconds between refreshes")
def _dashboard_parser(line: str) -> None:
    """Show a live dashboard of the %stem worker if one runs, else of the pool."""


@magic_arguments.magic_arguments(name="stem worker")
@magic_arguments.argument("action", choices=("start", "stop", "status"))
@magic_arguments.argument("registry", nargs="?", default=None,
                          help="(start) name of a TaskRegistry variable in the notebook")
@magic_arguments.argument("--broker", default=None, metavar="VAR",
                          help="(start) broker variable; default: a new InMemoryBroker")
@magic_arguments.argument("--backend", default=None, metavar="VAR",
                          help="(start) result backend variable; default: a new InMemoryResultBackend")
@magic_arguments.argument("--concurrency", type=int, default=None, metavar="N",
                          help="(start) tasks run at once")
@magic_arguments.argument("--queue", default="default", help="(start) queue to consume")
@magic_arguments.argument("--as", dest="var", default="worker", metavar="VAR",
                          help="(start) notebook variable that receives the worker")
@magic_arguments.argument("--mode", default="soft", choices=("warm", "soft", "hard"),
                          help="(stop) shutdown mode")
def _worker_parser(line: str) -> None:
    """Start, stop or show a task worker consuming from an in-memory (or given) broker."""


@magic_arguments.magic_arguments(name="%stem share")
@magic_arguments.argument("modules", nargs="+", metavar="MODULE", help="imported modules, by name")
@magic_arguments.argument("--undo", action="store_true", help="send them by name again")
def _share_parser(line: str) -> None:
    """Send helper modules' functions to isolates by value, so edits reach a warm pool (share_module)."""


PARSERS = {"run": _run_parser, "spawn": _spawn_parser, "send": _send_parser,
           "pause": _control_parser, "resume": _control_parser, "kill": _control_parser,
           "ps": _ps_parser, "pool": _pool_parser, "dashboard": _dashboard_parser,
           "worker": _worker_parser, "share": _share_parser}


class _Spawned:
    """The notebook's record of a ``%%stem spawn`` isolate."""

    def __init__(self, name: str, isolate: Any, inbox: Any, status_port: Any) -> None:
        self.name = name
        self.isolate = isolate
        self.inbox = inbox
        self.status_port = status_port
        self.sent = 0
        self.acked = 0
        self.exited = False
        self.capabilities: list[Any] = []
        self._process: Any = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.exited:
            return "exited"
        return "paused" if self.capabilities else "running"

    def on_status(self, message: Any) -> None:
        if isinstance(message, tuple) and message[:1] == ("ack",):
            with self._lock:
                self.acked += 1
        elif message == ("exited",):
            self.exited = True

    def usage(self) -> tuple[str, str]:
        """Return (CPU percent, RSS) of the isolate's process, or dashes once it is gone."""
        import psutil

        try:
            if self._process is None:
                self._process = psutil.Process(self.isolate.pid)
                self._process.cpu_percent(None)  # first reading primes the counter
            return (f"{self._process.cpu_percent(None):.0f}%",
                    _html.format_bytes(self._process.memory_info().rss))
        except (psutil.Error, TypeError, ValueError):
            return ("-", "-")


class IsolateTable:
    """The value of ``%stem ps``: a table with an HTML and a text form."""

    HEADERS = ("name", "pid", "state", "CPU", "RSS", "queued")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def _repr_html_(self) -> str:
        rows = [(n, p, _html.Raw(_html.state_badge(s), s), c, r, q) for n, p, s, c, r, q in self.rows]
        return _html.box("stem isolates", _html.table_html(self.HEADERS, rows,
                                                            empty="no isolates spawned"))

    def __repr__(self) -> str:
        return _html.table_text(self.HEADERS, self.rows, empty="no isolates spawned")


@magics_class
class StemMagics(Magics):
    """The ``%stem`` magics; state (pool, spawned isolates, worker) lives on this object."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.ip: Any = shell  # typed Any: IPython declares ``shell`` optional
        self.pool: Any = None
        self.isolates: dict[str, _Spawned] = {}
        self.worker: Any = None
        self.worker_var: str | None = None
        self._cell_numbers = itertools.count(1)

    @line_cell_magic
    def stem(self, line: str, cell: str | None = None) -> Any:
        sub, _, rest = line.strip().partition(" ")
        if not sub:
            raise UsageError("%stem needs a subcommand: " + ", ".join(PARSERS) + " (see %stem?)")
        parser = PARSERS.get(sub)
        if parser is None:
            raise UsageError(f"unknown %stem subcommand {sub!r}; use one of: "
                             + ", ".join(PARSERS) + " (see %stem?)")
        if sub in CELL_ONLY and cell is None:
            raise UsageError(f"{sub!r} runs a cell: write '%%stem {sub} ...' as the cell's first "
                             "line, with the code below it")
        if sub not in CELL_ONLY and cell is not None:
            raise UsageError(f"'%stem {sub}' is a line magic: use one % sign (it takes no cell body)")
        args = self._parse(parser, sub, rest)
        if sub in CELL_ONLY:
            return getattr(self, f"_do_{sub}")(args, cell)
        if sub in ("pause", "resume", "kill"):
            return self._do_control(sub, args)
        return getattr(self, f"_do_{sub}")(args)

    stem.__doc__ = _OVERVIEW + "\n" + "\n".join(
        dict.fromkeys(p.__doc__ for p in PARSERS.values()))  # type: ignore[operator]

    @staticmethod
    def _parse(parser: Any, sub: str, rest: str) -> Any:
        try:
            return magic_arguments.parse_argstring(parser, rest)
        except UsageError as exc:
            usage = parser.parser.format_usage().replace("::", "").strip()
            raise UsageError(f"%stem {sub}: {exc}\n{usage}\n(see %stem? for every option)") from None

    # -- helper modules -------------------------------------------------------------------------
    def _do_share(self, args: Any) -> None:
        import types

        import stemnb

        for name in args.modules:
            module = self.ip.user_ns.get(name)  # an alias (import helpers as h) names the module too
            target = module if isinstance(module, types.ModuleType) else name
            try:
                if args.undo:
                    stemnb.unshare_module(target)
                else:
                    stemnb.share_module(target)
            except (TypeError, ValueError, ImportError) as exc:
                raise UsageError(f"%stem share: {exc}") from None
        verb = "by name again" if args.undo else "by value"
        print(f"{', '.join(args.modules)}: sent to isolates {verb}")

    # -- pool and run ---------------------------------------------------------------------------
    def current_pool(self) -> Any:
        """Return the pool ``%%stem run`` uses: the one ``%stem pool --size`` made, else the default pool.

        The default pool is the one behind ``stemnb.run``, so the magics start no extra processes.
        """
        if self.pool is not None and not self.pool.closed:
            return self.pool
        import stemnb

        return stemnb.default_pool()

    def _do_pool(self, args: Any) -> Any:
        if args.size is not None and args.size < 1:
            raise UsageError(f"--size must be >= 1, got {args.size}")
        if args.size is not None:
            if self.pool is not None and not self.pool.closed:
                self.pool.resize(args.size)
            else:
                import stemnb

                self.pool = stemnb.IsolatePool(args.size, debug_name="%stem")
        return self.current_pool()

    def _do_run(self, args: Any, cell: str) -> None:
        pushed = self._user_values(args.push, "--push")
        filename = f"<%%stem run cell {next(self._cell_numbers)}>"
        future = self.current_pool().run(exec_cell, cell, pushed, list(args.pull), filename,
                                         timeout=args.timeout, debug_name=args.name)
        try:
            pulled = future.result()
        except KeyboardInterrupt:
            future.cancel()  # ends the process running the cell; the pool replaces it
            raise
        self.ip.user_ns.update(pulled)

    def _user_values(self, names: list[str], option: str) -> dict[str, Any]:
        missing = [n for n in names if n not in self.ip.user_ns]
        if missing:
            raise UsageError(f"{option}: no variable named {', '.join(missing)} in the notebook; "
                             "define it first or fix the name")
        return {n: self.ip.user_ns[n] for n in names}

    # -- spawned isolates -----------------------------------------------------------------------
    def _do_spawn(self, args: Any, cell: str) -> Any:
        import stemnb

        old = self.isolates.get(args.name)
        if old is not None and not old.exited:
            raise UsageError(f"an isolate named {args.name!r} is running; "
                             f"'%stem kill {args.name}' it first or choose another name")
        pushed = self._user_values(args.push, "--push")
        status = stemnb.ReceivePort(debug_name=f"%stem {args.name} status")
        filename = f"<%%stem spawn {args.name}>"
        isolate = None
        try:
            isolate = stemnb.spawn(spawned_cell, (cell, pushed, filename, status.send_port),
                                   debug_name=args.name).result(timeout=120)
            isolate.add_on_exit_listener(status.send_port, ("exited",))
            first = status.receive(timeout=120)  # not a listener: the kernel's loop is busy here
            if first[:1] != ("inbox",):
                raise RuntimeError(f"isolate {args.name!r} ended before its cell started")
        except BaseException:
            if isolate is not None:
                isolate.kill(priority=stemnb.Isolate.IMMEDIATE)
            status.close()
            raise
        record = _Spawned(args.name, isolate, first[1], status)
        status.listen(record.on_status)
        self.isolates[args.name] = record
        return isolate

    def _spawned(self, name: str) -> _Spawned:
        record = self.isolates.get(name)
        if record is None:
            known = ", ".join(sorted(self.isolates)) or "none yet"
            raise UsageError(f"no isolate named {name!r} (spawned: {known}); start one with "
                             f"'%%stem spawn {name}'")
        return record

    def _do_send(self, args: Any) -> None:
        record = self._spawned(args.name)
        if record.exited:
            raise UsageError(f"isolate {args.name!r} has exited; spawn it again with "
                             f"'%%stem spawn {args.name}'")
        expr = " ".join(args.expr)
        value = self.ip.ev(expr)
        record.inbox.send(value)
        with record._lock:
            record.sent += 1

    def _do_control(self, action: str, args: Any) -> None:
        import stemnb

        record = self._spawned(args.name)
        if record.exited:
            raise UsageError(f"isolate {args.name!r} has exited; nothing to {action}")
        if action == "pause":
            record.capabilities.append(record.isolate.pause())
        elif action == "resume":
            if not record.capabilities:
                raise UsageError(f"isolate {args.name!r} is not paused; '%stem pause {args.name}' first")
            record.isolate.resume(record.capabilities.pop())
        else:
            record.isolate.kill(priority=stemnb.Isolate.IMMEDIATE)
            record.exited = True
            record.status_port.close()

    def _do_ps(self, args: Any) -> IsolateTable:
        rows = []
        for name, record in self.isolates.items():
            cpu, rss = ("-", "-") if record.exited else record.usage()
            queued = max(0, record.sent - record.acked)
            rows.append((name, record.isolate.pid, record.state, cpu, rss, queued))
        return IsolateTable(rows)

    # -- dashboards and the worker --------------------------------------------------------------
    def _do_dashboard(self, args: Any) -> Any:
        if args.pool and args.worker:
            raise UsageError("choose one of --pool and --worker")
        if args.worker or (self.worker is not None and not args.pool):
            if self.worker is None:
                raise UsageError("no %stem worker runs; '%stem worker start REGISTRY' first")
            from ._dashboard_worker import WorkerDashboard

            return WorkerDashboard(self.worker, interval=args.interval)
        from ._dashboard_pool import PoolDashboard

        return PoolDashboard(self.current_pool(), interval=args.interval)

    def _do_worker(self, args: Any) -> Any:
        return getattr(self, f"_worker_{args.action}")(args)

    def _worker_start(self, args: Any) -> Any:
        import stemnb

        if self.worker is not None:
            raise UsageError("a %stem worker already runs; '%stem worker stop' it first")
        if args.registry is None:
            raise UsageError("'%stem worker start' needs the name of a TaskRegistry variable, "
                             "e.g. '%stem worker start registry'")
        values = self._user_values([args.registry], "registry")
        registry = values[args.registry]
        if not isinstance(registry, stemnb.TaskRegistry):
            raise UsageError(f"{args.registry!r} is of type {type(registry).__name__}, not a "
                             "stemnb.TaskRegistry")
        broker = (self._user_values([args.broker], "--broker")[args.broker] if args.broker
                  else stemnb.InMemoryBroker())
        backend = (self._user_values([args.backend], "--backend")[args.backend] if args.backend
                   else stemnb.InMemoryResultBackend())
        kwargs = {} if args.concurrency is None else {"concurrency": args.concurrency}
        worker = stemnb.Worker(broker=broker, registry=registry, backend=backend,
                               queue=args.queue, **kwargs)
        worker.start()
        self.worker, self.worker_var = worker, args.var
        self.ip.user_ns[args.var] = worker
        return worker

    def _worker_stop(self, args: Any) -> None:
        import stemnb

        if self.worker is None:
            raise UsageError("no %stem worker runs; nothing to stop")
        worker, self.worker = self.worker, None
        mode = getattr(stemnb.WorkerShutdownMode, args.mode.upper())
        worker.shutdown(mode=mode).result()

    def _worker_status(self, args: Any) -> Any:
        if self.worker is None:
            raise UsageError("no %stem worker runs; '%stem worker start REGISTRY' starts one")
        return self.worker

    # -- clean-up -----------------------------------------------------------------------------
    def close(self) -> None:
        """Kill spawned isolates, stop the worker and close the pool ``%stem pool --size`` made."""
        import stemnb

        for record in self.isolates.values():
            if not record.exited:
                try:
                    record.isolate.kill(priority=stemnb.Isolate.IMMEDIATE)
                finally:
                    record.exited = True
            record.status_port.close()
        self.isolates.clear()
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.shutdown(mode=stemnb.WorkerShutdownMode.HARD).result()
        if self.pool is not None:  # made by %stem pool --size; the default pool stays
            self.pool.close()
        self.pool = None


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%stem`` magics on ``ipython`` (``%load_ext stemnb``); loading twice is harmless."""
    if _instance(ipython) is None:
        ipython.register_magics(StemMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%stem`` magics, killing their isolates and closing the pool they made."""
    magics = _instance(ipython)
    if magics is None:
        return
    try:
        magics.close()
    finally:
        for kind in ("line", "cell"):
            ipython.magics_manager.magics[kind].pop("stem", None)
        ipython.magics_manager.registry.pop(type(magics).__name__, None)


def _instance(ipython: Any) -> StemMagics | None:
    found = ipython.magics_manager.registry.get(StemMagics.__name__)
    return found if isinstance(found, StemMagics) else None
