"""``Stem``: the producer. Enqueues tasks, waits for their results, builds canvases.

``enqueue`` merges the handler's defaults (when a registry is given) with the call's options,
encodes the args, claims a unique lock, signs, runs ``on_enqueue`` middleware, records
``queued`` in the backend and publishes (one round trip when both are on one Redis database,
see ``_paired``). ``queued`` is written *before* publishing (Stem wrote it
after), so a fast worker's ``running`` can never be overwritten by a late ``queued``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._backend import ResultBackend, TaskState, TaskStatus
from ._broker import Broker
from ._canvas import (
    BatchResult,
    BatchStatus,
    Canvas,
    ChainResult,
    ChordResult,
    GroupResult,
    Signature,
)
from ._envelope import Envelope, new_task_id
from ._exceptions import EncodingError
from ._future import Future
from ._middleware import Middleware, run_hook
from ._options import (
    TaskEnqueueOptions,
    TaskOptions,
    epoch_seconds,
    options_from_mapping,
    to_seconds,
)
from ._paired import PairedWrites, paired_writes
from ._task_wait import TaskWait

EXPIRES_KEY = "stem.expiresAt"

# name, args, options, headers, meta, args_encoder: one task to enqueue
_Spec = tuple[str, Any, TaskEnqueueOptions, "Mapping[str, str] | None", "Mapping[str, Any] | None", Any]
# an envelope, its task's options and the enqueue options it was built from
_Built = tuple[Envelope, TaskOptions, TaskEnqueueOptions]


class Stem:
    """The producer: ``enqueue(name, args, options) -> task id`` and ``wait_for_task(id)``.

    ``backend`` is needed to record states and wait for results. ``registry`` supplies each
    task's default options (queue, retries, limits, uniqueness).
    """

    def __init__(
        self,
        broker: Broker,
        backend: ResultBackend | None = None,
        *,
        registry: Any = None,
        signer: Any = None,
        unique_task_coordinator: Any = None,
        middleware: Sequence[Middleware] = (),
        encoder_registry: Any = None,
        args_encoder: Any = None,
        result_encoder: Any = None,
        additional_encoders: Iterable[Any] = (),
        codecs: Any = None,
    ) -> None:
        if not isinstance(broker, Broker):
            raise TypeError(f"broker must be a stemnb Broker, got {type(broker).__name__}")
        if backend is not None and not isinstance(backend, ResultBackend):
            raise TypeError(f"backend must be a stemnb ResultBackend, got {type(backend).__name__}")
        from ._worker._codecs import Codecs

        self.broker = broker
        self.backend = backend
        self.registry = registry
        self.signer = signer
        self.unique_task_coordinator = unique_task_coordinator
        self.middleware = list(middleware)
        self.codecs = codecs or Codecs(encoder_registry, args_encoder, result_encoder, additional_encoders)
        self.canvas = Canvas(self)
        self._paired_writes: PairedWrites | None = None

    # -- enqueue --------------------------------------------------------------------------------
    def enqueue(
        self,
        name: str,
        args: Any = None,
        options: TaskEnqueueOptions | Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        args_encoder: Any = None,
        **option_kwargs: Any,
    ) -> str:
        """Enqueue task ``name`` with ``args``; return its id.

        ``options`` (or keyword options such as ``countdown=5``, ``queue="io"``) override the
        handler's defaults. A unique task already queued returns the existing id.

        Raises:
            EncodingError: the args cannot be encoded (e.g. not JSON data with the JSON encoder).
            TypeError: unknown option names.
            ClosedError: the broker is closed.
        """
        opts = _merge_options(options, option_kwargs)
        return self._enqueue_specs([(name, args, opts, headers, meta, args_encoder)])[0]

    def enqueue_many(
        self,
        name: str,
        args_list: Iterable[Any],
        options: TaskEnqueueOptions | Mapping[str, Any] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        args_encoder: Any = None,
        **option_kwargs: Any,
    ) -> list[str]:
        """Enqueue task ``name`` once per item of ``args_list``, with the same options; return
        the ids in order.

        Every task is encoded before any is enqueued, so bad args enqueue nothing. On Redis the
        tasks travel pipelined, 256 per round trip, instead of one round trip each.

        Raises:
            EncodingError: an item cannot be encoded (the message names its index).
            ValueError: ``task_id`` was given (each task gets its own id).
            TypeError: unknown option names.
            ClosedError: the broker is closed.
        """
        opts = _merge_options(options, option_kwargs)
        if opts.task_id is not None:
            raise ValueError("enqueue_many() gives every task its own id; do not pass task_id")
        return self._enqueue_specs([(name, args, opts, headers, meta, args_encoder) for args in args_list])

    def _enqueue_specs(self, specs: Sequence[_Spec]) -> list[str]:
        """Build every envelope (raising before anything is enqueued), then claim, sign, run
        ``on_enqueue`` and publish them in order. Returns the ids (an existing unique task's id
        where one was enqueued already)."""
        return self._admit_and_publish(self._build_specs(specs))

    def _build_specs(self, specs: Sequence[_Spec]) -> list[_Built]:
        """The envelope of each spec, with the options it was built from.

        Raises:
            EncodingError: a spec's args cannot be encoded (naming its index if there are several).
        """
        built: list[_Built] = []
        for index, (name, args, opts, headers, meta, args_encoder) in enumerate(specs):
            handler = self.registry.resolve(name) if self.registry is not None else None
            task_opts: TaskOptions = handler.options if handler is not None else _DEFAULT_TASK_OPTIONS
            try:
                envelope = self._build(
                    name, {} if args is None else args, opts, task_opts, handler, headers, meta, args_encoder
                )
            except EncodingError as exc:
                if len(specs) == 1:
                    raise
                raise EncodingError(f"task #{index} ({name!r}): {exc}") from exc
            built.append((envelope, task_opts, opts))
        return built

    def _admit_and_publish(self, built: Sequence[_Built]) -> list[str]:
        """Claim unique locks, sign, run ``on_enqueue``, then publish; return the ids in order."""
        ids: list[str] = []
        ready: list[Envelope] = []
        for envelope, task_opts, opts in built:
            if task_opts.unique and self.unique_task_coordinator is not None:
                envelope, existing = self._claim_unique(envelope, task_opts, opts)
                if existing is not None:
                    ids.append(existing)
                    continue
            if self.signer is not None:
                envelope = self.signer.sign(envelope)
            run_hook(self.middleware, "on_enqueue", envelope)
            ready.append(envelope)
            ids.append(envelope.id)
        self._publish(ready)
        return ids

    def _publish(self, envelopes: Sequence[Envelope]) -> None:
        """Record ``queued`` for each envelope (with a backend), then publish it, in order."""
        if self.backend is None:
            for envelope in envelopes:
                self.broker.publish(envelope, queue=envelope.queue)
            return
        pairs = [
            (TaskStatus(e.id, TaskState.QUEUED, meta={"task": e.name, "queue": e.queue}), e) for e in envelopes
        ]
        if len(pairs) == 1:
            self._paired().set_then_publish(*pairs[0])
        elif pairs:
            self._paired().set_then_publish_many(pairs)

    def _paired(self) -> PairedWrites:
        """The paired writes for the current broker and backend (rebuilt if either was replaced)."""
        paired = self._paired_writes
        if paired is None or paired.broker is not self.broker or paired.backend is not self.backend:
            assert self.backend is not None
            paired = self._paired_writes = paired_writes(self.broker, self.backend)
        return paired

    def _build(
        self,
        name: str,
        args: Any,
        opts: TaskEnqueueOptions,
        task_opts: TaskOptions,
        handler: Any,
        headers: Mapping[str, str] | None,
        meta: Mapping[str, Any] | None,
        args_encoder: Any,
    ) -> Envelope:
        data, enc_headers, enc_meta = self.codecs.encode_args(args, handler, args_encoder)
        if not isinstance(data, dict):
            encoder_id = next(iter(enc_headers.values()))
            raise EncodingError(
                f"task args must be a dict for the {encoder_id!r} encoder, got {type(args).__name__}; "
                "pass a dict, or args_encoder='cloudpickle' for other values"
            )
        now = time.time()
        policy = opts.retry_policy if opts.retry_policy is not None else task_opts.retry_policy
        env_meta: dict[str, Any] = {**enc_meta, **dict(meta or {})}
        _put_limits(env_meta, opts, task_opts, now)
        if opts.retry_policy is not None:
            env_meta["stem.retryPolicy"] = _policy_dict(opts.retry_policy)
        if opts.link:
            env_meta["stem.link"] = [_signature(s).to_dict() for s in opts.link]
        if opts.link_error:
            env_meta["stem.linkError"] = [_signature(s).to_dict() for s in opts.link_error]
        if opts.unique_key:
            env_meta["uniqueKey"] = opts.unique_key
        not_before = None
        if opts.countdown is not None:
            not_before = now + opts.countdown
        elif opts.eta is not None:
            not_before = epoch_seconds(opts.eta)
        return Envelope(
            name=name,
            args=data,
            id=opts.task_id or new_task_id(),
            headers={**dict(headers or {}), **enc_headers},
            meta=env_meta,
            queue=opts.queue or task_opts.queue,
            priority=opts.priority if opts.priority is not None else task_opts.priority,
            max_retries=_max_retries(opts, task_opts, policy),
            enqueued_at=now,
            not_before=not_before,
            visibility_timeout=task_opts.visibility_timeout,
        )

    def _claim_unique(self, envelope: Envelope, task_opts: TaskOptions, opts: TaskEnqueueOptions) -> tuple[Envelope, str | None]:
        ttl = task_opts.unique_for or task_opts.visibility_timeout or envelope.visibility_timeout
        claim = self.unique_task_coordinator.acquire(envelope, ttl=ttl)
        if not claim.acquired:
            return envelope, claim.existing_id
        return claim.envelope, None

    # -- results --------------------------------------------------------------------------------
    def get_status(self, task_id: str) -> TaskStatus | None:
        """Return the task's status with its payload decoded, or None when unknown."""
        status = self._need_backend().get(task_id)
        return None if status is None else self._decoded(status)

    def wait_for_task(self, task_id: str, timeout: float | None = None) -> Future[TaskStatus]:
        """Return a Future resolved with the task's terminal status (payload decoded).

        Event-driven (a backend watch). The Future raises TimeoutError after ``timeout`` seconds,
        and ClosedError when the backend is closed first; cancelling it stops the wait. Raises
        RuntimeError when the producer has no backend, and ValueError (TypeError) for a
        ``timeout`` that is not a finite number of seconds >= 0 (not a number).
        """
        timeout = to_seconds("timeout", timeout)
        return TaskWait(self._need_backend(), task_id, timeout, self._decoded).future

    def result(self, task_id: str, timeout: float | None = None) -> Any:
        """Block for the task's result; raise TaskError (with the remote error) if it did not succeed."""
        status = self.wait_for_task(task_id, timeout).result()
        if status.state is TaskState.SUCCEEDED:
            return status.payload
        from ._exceptions import TaskError

        error = status.error or {}
        raise TaskError(f"task {task_id} {status.state.value}: {error.get('type')}: {error.get('message')}")

    def _decoded(self, status: TaskStatus) -> TaskStatus:
        if status.payload is None:
            return status
        return dataclasses.replace(status, payload=self.codecs.decode_result_status(status))

    def _need_backend(self) -> ResultBackend:
        if self.backend is None:
            raise RuntimeError("this Stem has no result backend; pass Stem(broker, backend)")
        return self.backend

    # -- canvas ---------------------------------------------------------------------------------
    def chain(self, steps: Sequence[Signature | str]) -> ChainResult:
        """See :meth:`Canvas.chain`."""
        return self.canvas.chain(steps)

    def group(self, members: Sequence[Signature | str]) -> GroupResult:
        """See :meth:`Canvas.group`."""
        return self.canvas.group(members)

    def chord(self, members: Sequence[Signature | str], callback: Signature | str) -> ChordResult:
        """See :meth:`Canvas.chord`."""
        return self.canvas.chord(members, callback)

    def batch(self, members: Sequence[Signature | str], *, batch_id: str | None = None) -> BatchResult:
        """See :meth:`Canvas.batch`."""
        return self.canvas.batch(members, batch_id=batch_id)

    def inspect_batch(self, batch_id: str) -> BatchStatus | None:
        """See :meth:`Canvas.inspect_batch`."""
        return self.canvas.inspect_batch(batch_id)


_NO_OPTIONS = TaskEnqueueOptions()  # frozen: every enqueue without options shares it
_DEFAULT_TASK_OPTIONS = TaskOptions()  # an unregistered task's, shared alike


def _merge_options(options: Any, kwargs: Mapping[str, Any]) -> TaskEnqueueOptions:
    if options is None:
        return options_from_mapping(kwargs) if kwargs else _NO_OPTIONS
    if isinstance(options, Mapping):
        return options_from_mapping({**options, **kwargs})
    if not isinstance(options, TaskEnqueueOptions):
        raise TypeError(f"options must be TaskEnqueueOptions or a dict, got {type(options).__name__}")
    return options.replace(**kwargs) if kwargs else options


def _put_limits(meta: dict[str, Any], opts: TaskEnqueueOptions, task_opts: TaskOptions, now: float) -> None:
    if opts.time_limit is not None:
        meta["stem.timeLimit"] = opts.time_limit
    if opts.soft_time_limit is not None:
        meta["stem.softTimeLimit"] = opts.soft_time_limit
    ignore = opts.ignore_result if opts.ignore_result is not None else task_opts.ignore_result
    if ignore:
        meta["stem.ignoreResult"] = True
    expires = opts.expires if opts.expires is not None else task_opts.expires
    if expires is not None:
        meta[EXPIRES_KEY] = now + expires if isinstance(expires, (int, float)) else epoch_seconds(expires)


def _max_retries(opts: TaskEnqueueOptions, task_opts: TaskOptions, policy: Any) -> int:
    if opts.max_retries is not None:
        return opts.max_retries
    if opts.retry_policy is not None and opts.retry_policy.max_retries is not None:
        return opts.retry_policy.max_retries
    if task_opts.retry_policy is not None and task_opts.retry_policy.max_retries is not None:
        return task_opts.retry_policy.max_retries
    return task_opts.max_retries


def _policy_dict(policy: Any) -> Any:
    return policy.to_dict() if hasattr(policy, "to_dict") else dict(policy)


def _signature(value: Any) -> Signature:
    if isinstance(value, Signature):
        return value
    if isinstance(value, str):
        return Signature(value)
    if isinstance(value, Mapping):
        return Signature.from_dict(value)
    raise TypeError(f"link / link_error entries must be Signatures or task names, got {value!r}")
