"""Lua scripts of the Redis broker; each runs atomically on the server.

Per queue the broker keeps: ``ready`` (ZSET token -> priority/FIFO score), ``delayed`` (ZSET
token -> not_before), ``inflight`` (ZSET token -> lease expiry), ``env`` (HASH token -> envelope
JSON), ``info`` (HASH ``token:s`` score, ``token:v`` visibility, ``token:n`` delivery count),
``dead`` (ZSET task id -> time), ``deadenv`` (HASH task id -> dead-letter JSON) and ``wake``
(LIST of tokens that wake blocked consumers). A receipt is ``token:n``, so a stale delivery
(reclaimed and delivered again) can no longer settle.
"""

from __future__ import annotations

# The ready score orders by priority (9 first), then publish order: (9 - p) * 1e13 + seq.
# KEYS: ready delayed env info wake seq; ARGV: envelope_json priority not_before|'' now vt|''
PUBLISH = """
local seq = redis.call('INCR', KEYS[6])
local tok = tostring(seq)
local score = (9 - tonumber(ARGV[2])) * 1e13 + seq
redis.call('HSET', KEYS[3], tok, ARGV[1])
redis.call('HSET', KEYS[4], tok .. ':s', string.format('%.0f', score), tok .. ':v', ARGV[5], tok .. ':n', 0)
if ARGV[3] ~= '' and tonumber(ARGV[3]) > tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[2], ARGV[3], tok)
else
  redis.call('ZADD', KEYS[1], string.format('%.0f', score), tok)
end
redis.call('RPUSH', KEYS[5], tok)
redis.call('LTRIM', KEYS[5], -64, -1)
return tok
"""

# Promote due delayed tokens and reclaim expired leases of one queue (keys at offset o).
_MAINTAIN = """
local function maintain(o, now)
  local ready, delayed, inflight, info = KEYS[o + 1], KEYS[o + 2], KEYS[o + 3], KEYS[o + 5]
  for _, zset in ipairs({delayed, inflight}) do
    local due = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, 512)
    for _, tok in ipairs(due) do
      redis.call('ZREM', zset, tok)
      redis.call('ZADD', ready, redis.call('HGET', info, tok .. ':s'), tok)
    end
  end
end
"""

# KEYS: per queue (ready delayed inflight env info wake); ARGV: now default_vt nqueues max_count
# Leases up to max_count envelopes, best first across the queues. Returns {taken, next_due,
# drained}: taken lists {queue_index, token, delivery_count, lease_expiry, envelope_json};
# next_due is the earliest delayed or lease-expiry time, or ''; drained is 1 when no queue has a
# ready envelope left. A drained queue's wake tokens are stale (nothing is left to wake for), so
# they are dropped: the caller can then block on the wake lists without looking again first.
TAKE = (
    _MAINTAIN
    + """
local now, dvt, n, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 0, n - 1 do maintain(i * 6, now) end
local taken = {}
while #taken < want do
  local best, best_score = nil, nil
  for i = 0, n - 1 do
    local head = redis.call('ZRANGE', KEYS[i * 6 + 1], 0, 0, 'WITHSCORES')
    if head[1] and (best == nil or tonumber(head[2]) < best_score) then
      best, best_score = i, tonumber(head[2])
    end
  end
  if best == nil then break end
  local o = best * 6
  local ready, inflight, env, info = KEYS[o + 1], KEYS[o + 3], KEYS[o + 4], KEYS[o + 5]
  local tok = redis.call('ZRANGE', ready, 0, 0)[1]
  redis.call('ZREM', ready, tok)
  local vt = tonumber(redis.call('HGET', info, tok .. ':v') or '')
  if vt == nil or vt <= 0 then vt = dvt end
  local expires = string.format('%.6f', now + vt)
  redis.call('ZADD', inflight, expires, tok)
  local count = redis.call('HINCRBY', info, tok .. ':n', 1)
  taken[#taken + 1] = {best, tok, count, expires, redis.call('HGET', env, tok)}
end
local drained = 1
for i = 0, n - 1 do
  if redis.call('ZCARD', KEYS[i * 6 + 1]) == 0 then
    redis.call('DEL', KEYS[i * 6 + 6])
  else
    drained = 0
  end
end
local next_due = ''
for i = 0, n - 1 do  -- when to look again without a wake: next due envelope or lease expiry
  for _, zset in ipairs({KEYS[i * 6 + 2], KEYS[i * 6 + 3]}) do
    local head = redis.call('ZRANGE', zset, 0, 0, 'WITHSCORES')
    if head[1] and (next_due == '' or tonumber(head[2]) < tonumber(next_due)) then
      next_due = head[2]
    end
  end
end
return {taken, next_due, drained}
"""
)

# KEYS: ready delayed inflight env info; ARGV: now -> {ready, delayed, inflight}
COUNTS = (
    _MAINTAIN
    + """
maintain(0, tonumber(ARGV[1]))
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3])}
"""
)

# Shared prologue of the settle scripts: the lease must still be this delivery's.
_HELD = """
local tok, n = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[5], tok .. ':n') ~= n or not redis.call('ZSCORE', KEYS[3], tok) then
  return 0
end
redis.call('ZREM', KEYS[3], tok)
local function forget()
  redis.call('HDEL', KEYS[4], tok)
  redis.call('HDEL', KEYS[5], tok .. ':s', tok .. ':v', tok .. ':n')
end
"""

# KEYS: ready delayed inflight env info wake; ARGV: token count
ACK = _HELD + "forget()\nreturn 1\n"

# ARGV: token count requeue(0/1)
NACK = (
    _HELD
    + """
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[5], tok .. ':s'), tok)
  redis.call('RPUSH', KEYS[6], tok)
  redis.call('LTRIM', KEYS[6], -64, -1)
else
  forget()
end
return 1
"""
)

# KEYS: ready delayed inflight env info wake dead deadenv; ARGV: token count task_id entry_json now
DEAD_LETTER = (
    _HELD
    + """
forget()
redis.call('HSET', KEYS[8], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[7], ARGV[5], ARGV[3])
return 1
"""
)

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
# ARGV: task_id envelope_json priority not_before|'' now vt|''
REPLAY_ONE = """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local seq = redis.call('INCR', KEYS[8])
local tok = tostring(seq)
local score = string.format('%.0f', (9 - tonumber(ARGV[3])) * 1e13 + seq)
redis.call('HSET', KEYS[5], tok, ARGV[2])
redis.call('HSET', KEYS[6], tok .. ':s', score, tok .. ':v', ARGV[6], tok .. ':n', 0)
if ARGV[4] ~= '' and tonumber(ARGV[4]) > tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[4], ARGV[4], tok)
else
  redis.call('ZADD', KEYS[3], score, tok)
end
redis.call('RPUSH', KEYS[7], tok)
redis.call('LTRIM', KEYS[7], -64, -1)
return 1
"""
