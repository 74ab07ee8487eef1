"""The Redis result backend: statuses, groups, chord claims and heartbeats shared across processes.

Statuses are JSON strings with a Redis TTL, indexed by update time for listing (newest first,
read a page at a time until enough match) beside a sorted set of their expiries, by which every
write trims both: they hold the live statuses only (worker heartbeats alike); every ``set``
also publishes the status on one pub/sub channel, which a listener thread (started by the first
``watch``) dispatches to watchers in order (``_redis_feed``). Needs ``redis`` (``pip install "stemnb[redis]"``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from .._backend import (
    DEFAULT_GROUP_TTL,
    DEFAULT_HEARTBEAT_TTL,
    DEFAULT_RESULT_TTL,
    GroupStatus,
    ResultBackend,
    TaskState,
    TaskStatus,
    Watch,
    WorkerHeartbeat,
    _check_expected,
    _check_page,
    _check_task_id,
    _check_ttl,
    _coerce_state,
)
from .._exceptions import ClosedError, EncodingError
from .._json import compact_json, parse_json
from .._redis_client import Commands, connect, database_of
from ._redis_feed import StatusFeed

__all__ = ["RedisResultBackend"]

log = logging.getLogger("stemnb.backend")

LIST_PAGE = 500  # statuses read per round trip by list_statuses
FEED_TRUST = 300.0  # seconds a status the watch feed saw counts as current (see _redis_feed)

_ADD_GROUP_RESULT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
redis.call('HSET', KEYS[1], 'r:' .. ARGV[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
"""

# k: status index expiries channel; a: status_json ttl_ms task_id updated_at. A function, so the
# broker's scripts can follow it in one round trip (``stemnb._redis_paired``). The index orders
# the live statuses by update time (for listing, newest first); the expiries set scores each by
# when it expires (Redis's clock, ms), and every write drops up to 64 entries that expired before
# it from both: they hold the live statuses only, however many tasks ran.
_NOW_MS_FN = """
local now_ms_read  -- one TIME per script run: every write of a fused script shares it
local function now_ms()
  if now_ms_read == nil then
    local t = redis.call('TIME')
    now_ms_read = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_ms_read
end
"""
_INDEX_UNTIL_FN = _NOW_MS_FN + """
local function index_until(index, id, ttl_ms)
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now)
  redis.call('ZADD', index, now + tonumber(ttl_ms), id)
end
"""
SET_STATUS_FN = _NOW_MS_FN + """
local pruned  -- the expiries set this script run pruned already (at the same time)
local function set_status(k, a)
  redis.call('SET', k[1], a[1], 'PX', a[2])
  local now = now_ms()
  if pruned ~= k[3] then
    local gone = redis.call('ZRANGEBYSCORE', k[3], '-inf', '(' .. now, 'LIMIT', 0, 64)
    if #gone > 0 then
      redis.call('ZREM', k[2], unpack(gone))
      redis.call('ZREM', k[3], unpack(gone))
    end
    pruned = k[3]
  end
  redis.call('ZADD', k[2], a[4], a[3])
  redis.call('ZADD', k[3], now + tonumber(a[2]), a[3])
  redis.call('PUBLISH', k[4], a[1])
end
"""
_SET_STATUS = SET_STATUS_FN + "set_status(KEYS, ARGV)\n"

# k: status expiries; a: ttl_ms task_id
_EXPIRE = _NOW_MS_FN + """
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[1]), ARGV[2])
return 1
"""

# k: heartbeat heartbeat-index; a: heartbeat_json ttl_ms worker_id
_SET_HEARTBEAT = _INDEX_UNTIL_FN + """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
index_until(KEYS[2], ARGV[3], ARGV[2])
"""

# k: group; a: expected meta_json ttl_ms -> 1 if created, 0 if the group existed
_CREATE_GROUP = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'expected', ARGV[1], 'meta', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

_CLAIM_CHORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'claimed', '1')
"""


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))


def _group_from_hash(group_id: str, fields: dict[bytes, bytes]) -> GroupStatus:
    results = {}
    for name, value in fields.items():
        if name.startswith(b"r:"):
            status = TaskStatus.from_dict(parse_json(value))
            results[status.id] = status
    meta = parse_json(fields.get(b"meta", b"{}"))
    return GroupStatus(group_id, int(fields[b"expected"]), results, meta)


class RedisResultBackend(ResultBackend):
    """A result backend in Redis (``url``, or an existing ``client``), under ``namespace``.

    TTL defaults match Stem: results and groups 1 day, worker heartbeats 60 s. Payloads, meta
    and errors must be JSON data (the worker stores encoded results).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "stemnb",
        default_ttl: float = DEFAULT_RESULT_TTL,
        group_ttl: float = DEFAULT_GROUP_TTL,
        heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL,
        client: Any = None,
    ) -> None:
        self.default_ttl = _check_ttl(default_ttl, DEFAULT_RESULT_TTL)
        self.group_ttl = _check_ttl(group_ttl, DEFAULT_GROUP_TTL)
        self.heartbeat_ttl = _check_ttl(heartbeat_ttl, DEFAULT_HEARTBEAT_TTL)
        self.namespace = namespace
        self._task_prefix = self._key("task", "")  # see _task_key
        self._index_keys = (self._key("tasks"), self._key("task-expiries"), self._key("task-events"))
        self._client, self._owns_client = connect(url, client, "RedisResultBackend")
        self._add_group_result = self._client.register_script(_ADD_GROUP_RESULT)
        self._claim_chord = self._client.register_script(_CLAIM_CHORD)
        self._set_status = self._client.register_script(_SET_STATUS)
        self._expire = self._client.register_script(_EXPIRE)
        self._create_group = self._client.register_script(_CREATE_GROUP)
        self._set_heartbeat = self._client.register_script(_SET_HEARTBEAT)
        self._commands = Commands(self._client)
        self._feed = StatusFeed(
            self._client,
            self._key("task-events"),
            self.get,
            min(self.default_ttl, FEED_TRUST),
            self._stored_many,
        )
        self._lock = threading.Lock()
        self._closed = False

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _task_key(self, task_id: str) -> str:
        """The key of ``task_id``'s status (made from a prefix kept: it is on every status write)."""
        return self._task_prefix + task_id

    def _redis_database(self) -> tuple[Any, ...] | None:
        return database_of(self._client)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the RedisResultBackend is closed")

    # -- task statuses ---------------------------------------------------------------------------
    def set(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        payload: Any = None,
        error: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        attempt: int = 0,
        ttl: float | None = None,
    ) -> TaskStatus:
        status = TaskStatus(
            task_id, _coerce_state(state), payload, error, dict(meta or {}), attempt
        )
        self._commands.script(self._set_status, *self._status_call(status, ttl))
        return status

    def _status_call(self, status: TaskStatus, ttl: float | None) -> tuple[list[str], list[Any]]:
        """The status script's keys and arguments to store ``status`` for ``ttl`` seconds.

        Raises:
            ValueError: ``ttl`` is not > 0, or the task id is not a non-empty string.
            EncodingError: the status is not JSON data.
            ClosedError: the backend is closed.
        """
        _check_task_id(status.id)
        ttl_s = _check_ttl(ttl, self.default_ttl)
        try:
            text = compact_json(status.to_dict())
        except (TypeError, ValueError) as exc:
            raise EncodingError(f"the status of task {status.id} is not JSON data: {exc}") from exc
        self._check_open()
        task_id = status.id
        keys = [self._task_key(task_id), *self._index_keys]
        return keys, [text, _ms(ttl_s), task_id, repr(status.updated_at)]

    def get(self, task_id: str) -> TaskStatus | None:
        self._check_open()
        text = self._commands.command("GET", self._task_key(task_id))
        return None if text is None else TaskStatus.from_dict(parse_json(text))

    def _stored_many(self, task_ids: list[str]) -> list[bytes | None]:
        """The stored status JSON of each of ``task_ids`` (None where there is none), read
        :data:`LIST_PAGE` at a time."""
        found: list[bytes | None] = []
        for start in range(0, len(task_ids), LIST_PAGE):
            keys = [self._task_key(task_id) for task_id in task_ids[start : start + LIST_PAGE]]
            found.extend(self._commands.command("MGET", *keys))
        return found

    def watch(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        self._check_watch(callback)
        return self._feed.watch(task_id, callback)

    def watch_status(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        """See :meth:`ResultBackend.watch_status`. The current status costs no round trip when
        this process's feed has seen the task (see ``_redis_feed``)."""
        self._check_watch(callback)
        return self._feed.watch(task_id, callback, current=True)

    def watch_terminal(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        """See :meth:`ResultBackend.watch_terminal`. The feed decodes no status of the task
        that is not terminal, for this watch."""
        self._check_watch(callback)
        return self._feed.watch(task_id, callback, current=True, terminal_only=True)

    def _check_watch(self, callback: Any) -> None:
        if not callable(callback):
            raise TypeError(f"watch() needs a callable, got {callback!r}")
        self._check_open()

    def list_statuses(
        self,
        *,
        state: TaskState | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskStatus]:
        _check_page(limit, offset)
        wanted = None if state is None else _coerce_state(state)
        self._check_open()
        index, need = self._key("tasks"), offset + limit
        found: list[TaskStatus] = []
        start = 0
        while len(found) < need:  # newest first, a page of the index at a time
            ids = [i.decode() for i in self._client.zrevrange(index, start, start + LIST_PAGE - 1)]
            if not ids:
                break
            start += LIST_PAGE
            texts = self._client.mget([self._task_key(i) for i in ids])
            gone = [i for i, t in zip(ids, texts, strict=True) if t is None]
            if gone:  # expired or forgotten since the last write trimmed the index
                self._client.zrem(index, *gone)
                self._client.zrem(self._key("task-expiries"), *gone)
                start -= len(gone)
            for text in texts:
                if text is None:
                    continue
                s = TaskStatus.from_dict(parse_json(text))
                if (
                    (wanted is None or s.state is wanted)
                    and (task is None or s.meta.get("task") == task)
                    and (queue is None or s.meta.get("queue") == queue)
                ):
                    found.append(s)
        return found[offset : offset + limit]

    def expire(self, task_id: str, ttl: float) -> bool:
        ttl_s = _check_ttl(ttl, self.default_ttl)
        self._check_open()
        keys = [self._task_key(task_id), self._key("task-expiries")]
        return bool(self._commands.script(self._expire, keys, [_ms(ttl_s), task_id]))

    def forget(self, task_id: str) -> bool:
        self._check_open()
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._task_key(task_id))
        pipe.zrem(self._key("tasks"), task_id)
        pipe.zrem(self._key("task-expiries"), task_id)
        self._feed.forget(task_id)
        return bool(pipe.execute()[0])

    # -- groups and chords -----------------------------------------------------------------------
    def init_group(
        self,
        group_id: str,
        expected: int,
        *,
        meta: dict[str, Any] | None = None,
        ttl: float | None = None,
        exclusive: bool = False,
    ) -> GroupStatus | None:
        _check_expected(expected)
        ttl_s = _check_ttl(ttl, self.group_ttl)
        self._check_open()
        key = self._key("group", group_id)
        meta_json = json.dumps(meta or {})
        if exclusive:
            args = [expected, meta_json, _ms(ttl_s)]
            if not self._commands.script(self._create_group, [key], args):
                return None
            return GroupStatus(group_id, expected, {}, dict(meta or {}))
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"expected": expected, "meta": meta_json})
        pipe.pexpire(key, _ms(ttl_s))
        pipe.execute()
        return GroupStatus(group_id, expected, {}, dict(meta or {}))

    def add_group_result(self, group_id: str, status: TaskStatus) -> GroupStatus | None:
        if not isinstance(status, TaskStatus):
            raise TypeError(f"add_group_result() needs a TaskStatus, got {type(status).__name__}")
        self._check_open()
        text = compact_json(status.to_dict())
        flat = self._add_group_result(keys=[self._key("group", group_id)], args=[status.id, text])
        if not flat:
            return None
        return _group_from_hash(group_id, dict(zip(flat[::2], flat[1::2], strict=True)))

    def get_group(self, group_id: str) -> GroupStatus | None:
        self._check_open()
        fields = self._client.hgetall(self._key("group", group_id))
        return _group_from_hash(group_id, fields) if fields else None

    def claim_chord(self, group_id: str) -> bool:
        self._check_open()
        return bool(self._claim_chord(keys=[self._key("group", group_id)]))

    # -- worker heartbeats -----------------------------------------------------------------------
    def set_worker_heartbeat(self, heartbeat: WorkerHeartbeat, *, ttl: float | None = None) -> None:
        if not isinstance(heartbeat, WorkerHeartbeat):
            raise TypeError(f"expected a WorkerHeartbeat, got {type(heartbeat).__name__}")
        ttl_s = _check_ttl(ttl, self.heartbeat_ttl)
        self._check_open()
        keys = [self._key("hb", heartbeat.worker_id), self._key("hb-index")]
        args = [json.dumps(heartbeat.to_dict()), _ms(ttl_s), heartbeat.worker_id]
        self._commands.script(self._set_heartbeat, keys, args)

    def get_worker_heartbeat(self, worker_id: str) -> WorkerHeartbeat | None:
        self._check_open()
        text = self._client.get(self._key("hb", worker_id))
        return None if text is None else WorkerHeartbeat.from_dict(parse_json(text))

    def list_worker_heartbeats(self, namespace: str | None = None) -> list[WorkerHeartbeat]:
        self._check_open()
        index = self._key("hb-index")
        ids = sorted(i.decode() for i in self._client.zrange(index, 0, -1))
        if not ids:
            return []
        texts = self._client.mget([self._key("hb", i) for i in ids])
        gone = [i for i, t in zip(ids, texts, strict=True) if t is None]
        if gone:
            self._client.zrem(index, *gone)
        beats = [WorkerHeartbeat.from_dict(parse_json(t)) for t in texts if t is not None]
        return [hb for hb in beats if namespace is None or hb.namespace == namespace]

    def remove_worker_heartbeat(self, worker_id: str) -> bool:
        self._check_open()
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._key("hb", worker_id))
        pipe.zrem(self._key("hb-index"), worker_id)
        return bool(pipe.execute()[0])

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._feed.close()
        self._commands.close()
        if self._owns_client:
            self._client.close()
        self._run_close_hooks()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisResultBackend {state} namespace={self.namespace!r}>"
