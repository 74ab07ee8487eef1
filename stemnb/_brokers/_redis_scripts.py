"""Lua scripts of the Redis broker; each runs atomically on the server.

Per queue the broker keeps: ``ready`` (ZSET token -> priority/FIFO score), ``delayed`` (ZSET
token -> not_before), ``inflight`` (ZSET token -> lease expiry), ``env`` (HASH token -> envelope
JSON), ``info`` (HASH ``token:s`` score, ``token:v`` visibility, ``token:n`` delivery count),
``dead`` (ZSET task id -> time), ``deadenv`` (HASH task id -> dead-letter JSON) and ``wake``
(LIST of tokens that wake blocked consumers; cut to its last 64 once it passes 128). A receipt
is ``token:n``, so a stale delivery (reclaimed and delivered again) can no longer settle.
"""

from __future__ import annotations

# Every script that settles or publishes is a Lua function plus one call of it, so that another
# script's function (the result backend's status write) can run first in the same round trip
# (see ``stemnb._redis_paired``). ``slice`` cuts one part's keys or arguments out of a script's.
SLICE = """
local function slice(t, first, last)
  local out = {}
  for i = first, last do out[#out + 1] = t[i] end
  return out
end
"""

# The ready score orders by priority (9 first), then publish order: (9 - p) * 1e13 + seq.
# k: ready delayed env info wake seq; a: envelope_json priority not_before|'' now vt|''
PUBLISH_FN = """
local function publish(k, a)
  local seq = redis.call('INCR', k[6])
  local tok = tostring(seq)
  local score = string.format('%.0f', (9 - tonumber(a[2])) * 1e13 + seq)
  redis.call('HSET', k[3], tok, a[1])
  redis.call('HSET', k[4], tok .. ':s', score, tok .. ':v', a[5], tok .. ':n', 0)
  if a[3] ~= '' and tonumber(a[3]) > tonumber(a[4]) then
    redis.call('ZADD', k[2], a[3], tok)
  else
    redis.call('ZADD', k[1], score, tok)
  end
  if redis.call('RPUSH', k[5], tok) > 128 then redis.call('LTRIM', k[5], -64, -1) end
  return tok
end
"""
PUBLISH = PUBLISH_FN + "return publish(KEYS, ARGV)\n"

# Promote due delayed tokens and reclaim expired leases of one queue (its keys at k[o + 1..]).
_MAINTAIN = """
local function maintain(k, o, now)
  local ready, delayed, inflight, info = k[o + 1], k[o + 2], k[o + 3], k[o + 5]
  for _, zset in ipairs({delayed, inflight}) do
    local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 512)
    for _, tok in ipairs(due) do
      redis.call('ZREM', zset, tok)
      redis.call('ZADD', ready, redis.call('HGET', info, tok .. ':s'), tok)
    end
  end
end
"""

# k: per queue (ready delayed inflight env info wake); a: now default_vt nqueues max_count
# Leases up to max_count envelopes, best first across the queues. Returns {taken, next_due,
# drained}: taken lists {queue_index, token, delivery_count, lease_expiry, envelope_json};
# next_due is, once drained, the earliest delayed or lease-expiry time (else, or with none, '');
# drained is 1 when no queue has a ready envelope left. A drained queue's wake tokens are stale
# (nothing is left to wake for), so they are dropped: the caller can then block on the wake
# lists without looking again first.
TAKE_FN = (
    _MAINTAIN
    + """
local function take(k, a)
  local now, dvt, n, want = tonumber(a[1]), tonumber(a[2]), tonumber(a[3]), tonumber(a[4])
  for i = 0, n - 1 do maintain(k, i * 6, now) end
  local taken = {}
  local function lease(i, tok)
    local inflight, env, info = k[i * 6 + 3], k[i * 6 + 4], k[i * 6 + 5]
    local vt = tonumber(redis.call('HGET', info, tok .. ':v') or '')
    if vt == nil or vt <= 0 then vt = dvt end
    local expires = string.format('%.6f', now + vt)
    redis.call('ZADD', inflight, expires, tok)
    local count = redis.call('HINCRBY', info, tok .. ':n', 1)
    taken[#taken + 1] = {i, tok, count, expires, redis.call('HGET', env, tok)}
  end
  local short = false  -- fewer than wanted were ready: every queue is drained
  if n == 1 then
    local popped = redis.call('ZPOPMIN', k[1], want)
    for j = 1, #popped, 2 do lease(0, popped[j]) end
    short = #popped < 2 * want
  else
    while #taken < want do
      local best, best_score, best_tok = nil, nil, nil
      for i = 0, n - 1 do
        local head = redis.call('ZRANGE', k[i * 6 + 1], 0, 0, 'WITHSCORES')
        if head[1] and (best == nil or tonumber(head[2]) < best_score) then
          best, best_score, best_tok = i, tonumber(head[2]), head[1]
        end
      end
      if best == nil then short = true break end
      redis.call('ZREM', k[best * 6 + 1], best_tok)
      lease(best, best_tok)
    end
  end
  local drained = 1
  for i = 0, n - 1 do
    if short or redis.call('ZCARD', k[i * 6 + 1]) == 0 then
      redis.call('DEL', k[i * 6 + 6])
    else
      drained = 0
    end
  end
  local next_due = ''
  if drained == 1 then  -- when to look again without a wake: next due envelope or lease expiry
    for i = 0, n - 1 do
      for _, zset in ipairs({k[i * 6 + 2], k[i * 6 + 3]}) do
        local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
        if head[1] and (next_due == '' or tonumber(head[2]) < tonumber(next_due)) then
          next_due = head[2]
        end
      end
    end
  end
  return {taken, next_due, drained}
end
"""
)
TAKE = TAKE_FN + "return take(KEYS, ARGV)\n"

# KEYS: ready delayed inflight env info; ARGV: now -> {ready, delayed, inflight}
COUNTS = (
    _MAINTAIN
    + """
maintain(KEYS, 0, tonumber(ARGV[1]))
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}
"""
)

# The settle functions. k: ready delayed inflight env info wake [dead deadenv]; a starts with the
# receipt's token and delivery count. Each returns 1, or 0 when the lease is no longer this
# delivery's (it expired and was reclaimed, or was settled already): then nothing changes.
SETTLE_FNS = """
local function release(k, tok, n)
  return redis.call('HGET', k[5], tok .. ':n') == n and redis.call('ZREM', k[3], tok) == 1
end
local function forget(k, tok)
  redis.call('HDEL', k[4], tok)
  redis.call('HDEL', k[5], tok .. ':s', tok .. ':v', tok .. ':n')
end
-- a: token count
local function ack(k, a)
  if not release(k, a[1], a[2]) then return 0 end
  forget(k, a[1])
  return 1
end
-- a: token count requeue(0/1)
local function nack(k, a)
  if not release(k, a[1], a[2]) then return 0 end
  if a[3] == '1' then
    redis.call('ZADD', k[1], redis.call('HGET', k[5], a[1] .. ':s'), a[1])
    if redis.call('RPUSH', k[6], a[1]) > 128 then redis.call('LTRIM', k[6], -64, -1) end
  else
    forget(k, a[1])
  end
  return 1
end
-- a: token count task_id entry_json now
local function dead_letter(k, a)
  if not release(k, a[1], a[2]) then return 0 end
  forget(k, a[1])
  redis.call('HSET', k[8], a[3], a[4])
  redis.call('ZADD', k[7], a[5], a[3])
  return 1
end
"""
ACK = SETTLE_FNS + "return ack(KEYS, ARGV)\n"
NACK = SETTLE_FNS + "return nack(KEYS, ARGV)\n"
DEAD_LETTER = SETTLE_FNS + "return dead_letter(KEYS, ARGV)\n"

# KEYS: ready delayed inflight env info; ARGV: token count new_expiry
EXTEND = """
local tok, n = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[5], tok .. ':n') ~= n or not redis.call('ZSCORE', KEYS[3], tok) then
  return 0
end
redis.call('ZADD', KEYS[3], ARGV[3], tok)
return 1
"""

# KEYS: ready delayed env info; returns how many envelopes were dropped
PURGE = """
local count = 0
for _, zset in ipairs({KEYS[1], KEYS[2]}) do
  for _, tok in ipairs(redis.call('ZRANGE', zset, 0, -1)) do
    redis.call('HDEL', KEYS[3], tok)
    redis.call('HDEL', KEYS[4], tok .. ':s', tok .. ':v', tok .. ':n')
    count = count + 1
  end
  redis.call('DEL', zset)
end
return count
"""

# Take one dead letter out (if still there) and publish its envelope again.
# KEYS: dead deadenv + PUBLISH's keys (ready delayed env info wake seq)
# ARGV: task_id + PUBLISH's args (envelope_json priority not_before|'' now vt|'')
REPLAY_ONE = (
    SLICE
    + PUBLISH_FN
    + """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
publish(slice(KEYS, 3, 8), slice(ARGV, 2, 6))
return 1
"""
)
