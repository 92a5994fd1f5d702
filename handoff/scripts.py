"""Lua scripts: every state change of a handoff is one atomic step in Redis.

Each script checks the state it expects and answers a status word instead of raising, so exactly
one of many concurrent claims wins and a retried step never applies twice. Counters of the day
(``stats`` key) are updated in the same step as the change they count, so they are neither lost
nor doubled when a step is retried.

Two macros are expanded when this module is loaded:

- ``@announce(KEYS[n], message, maxlen, ttl)`` after a write of ``message`` to the outbox ``KEYS[n]``
  announces the write to the channels' push consumers (:func:`bot.outbox.lua_notice`) and copies the
  message to the outboxes of the customer's other conversations that joined the handoff (a shopper
  who moved from the website to the app), announcing those too.
- ``@release(record key, handoff id)`` ends the handoff for the conversation and every joined one.
"""

from __future__ import annotations

import re

from bot.outbox import lua_notice

STATS_TTL_S = 400 * 24 * 3600
"""Daily counters are kept a little over a year."""

ENQUEUE = """
-- KEYS: active(sender), requests stream. ARGV: handoff id, payload JSON.
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'handoff_id', ARGV[1], 'payload', ARGV[2])
return {1, ARGV[1]}
"""

MATERIALIZE = """
-- KEYS: record, queue, active(sender), day stats, history(sender), latest(sender)
-- ARGV: handoff id, score, now, reason, fields JSON (flat list), stats ttl, retention s
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fields = cjson.decode(ARGV[5])
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('RPUSH', KEYS[5], ARGV[1])
redis.call('SET', KEYS[6], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'handoffs', 1)
redis.call('HINCRBY', KEYS[4], 'reason:' .. ARGV[4], 1)
redis.call('EXPIRE', KEYS[4], ARGV[6])
if redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'queued_at', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'ended_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return 2
"""

REFINE = """
-- KEYS: record, queue, day stats. ARGV: handoff id, score, fields JSON (flat list), reason, stats ttl, fields to drop JSON, now
-- Answers -1 when the record does not exist yet, 0 when the handoff has ended, 3 when refined.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'assigned' then return 0 end
local previous = redis.call('HGET', KEYS[1], 'reason')
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
for _, name in ipairs(cjson.decode(ARGV[6])) do redis.call('HDEL', KEYS[1], name) end
redis.call('HSET', KEYS[1], 'refined_at', ARGV[7])
if previous and previous ~= ARGV[4] then
  redis.call('HINCRBY', KEYS[3], 'reason:' .. previous, -1)
  redis.call('HINCRBY', KEYS[3], 'reason:' .. ARGV[4], 1)
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
if status == 'queued' then redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1]) end
return 3
"""

CLAIM = """
-- KEYS: record, queue, agent load, day stats, recent waits, known agents
-- ARGV: agent, now, capacity, recent limit, stats ttl, agent display name,
--       the agent's teams JSON ('' or absent: every team; a handoff offered to the agent may be claimed whatever its team)
-- The first agent who serves a dedicated-agent shopper (the record's dedicated_key) becomes their dedicated agent.
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'queued' then return {'taken', redis.call('HGET', KEYS[1], 'agent') or status} end
local now = tonumber(ARGV[2])
local offered = redis.call('HGET', KEYS[1], 'offered_to')
if offered and offered ~= '' and offered ~= ARGV[1] then
  local offer_until = tonumber(redis.call('HGET', KEYS[1], 'offer_until') or '0') or 0
  if offer_until > now then return {'offered_to_other', offered} end
end
if ARGV[7] and ARGV[7] ~= '' and offered ~= ARGV[1] then
  local team = redis.call('HGET', KEYS[1], 'team') or ''
  local allowed = team == ''
  for _, mine in ipairs(cjson.decode(ARGV[7])) do allowed = allowed or mine == team end
  if not allowed then return {'wrong_team', team} end
end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'at_capacity', ''} end
local hid = redis.call('HGET', KEYS[1], 'handoff_id')
local wait = now - tonumber(redis.call('HGET', KEYS[1], 'enqueued_at'))
if wait < 0 then wait = 0 end
redis.call('HSET', KEYS[1], 'status', 'assigned', 'agent', ARGV[1], 'agent_name', ARGV[6], 'claimed_at', ARGV[2], 'wait_s', tostring(wait))
local dedicated = redis.call('HGET', KEYS[1], 'dedicated_key') or ''
if string.sub(dedicated, 1, 24) == 'handoff:dedicated_agent:' and redis.call('HSETNX', dedicated, 'agent', ARGV[1]) == 1 then
  redis.call('HSET', dedicated, 'agent_name', ARGV[6], 'since', ARGV[2], 'set_by', 'first_service')
end
redis.call('ZREM', KEYS[2], hid)
redis.call('SADD', KEYS[3], hid)
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[4], 'wait_sum_s', wait)
redis.call('HINCRBY', KEYS[4], 'wait_count', 1)
redis.call('EXPIRE', KEYS[4], ARGV[5])
redis.call('LPUSH', KEYS[5], tostring(wait))
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[4]) - 1)
return {'ok', tostring(wait)}
"""

SHOPPER_MESSAGE = """
-- KEYS: active(sender), by_customer(customer) (KEYS[1] again for an anonymous shopper).
-- ARGV: text, now, sender, transcript note when the message joins the customer's open handoff, retention s,
--       the client's message id ('' for none: a retry with the same id is written once)
local hid = redis.call('GET', KEYS[1])
local joined = '0'
if not hid and KEYS[2] ~= KEYS[1] then
  local primary = redis.call('GET', KEYS[2])
  if primary and primary ~= ARGV[3] then
    local candidate = redis.call('GET', 'handoff:active:' .. primary)
    if candidate and string.match(candidate, '^h%x+$') then
      local open = redis.call('HGET', 'handoff:' .. candidate, 'status')
      if open == 'queued' or open == 'assigned' then
        redis.call('SET', KEYS[1], candidate)
        redis.call('SADD', 'handoff:mirrors:' .. primary, ARGV[3])
        redis.call('EXPIRE', 'handoff:mirrors:' .. primary, ARGV[5])
        redis.call('XADD', 'handoff:transcript:' .. candidate, '*', 'from', 'system', 'text', ARGV[4], 'at', ARGV[2])
        hid = candidate
        joined = '1'
      end
    end
  end
end
if not hid then return false end
if not string.match(hid, '^h%x+$') then return {'foreign', hid, '', '', '', '', '0'} end
local seen_key = ''
if ARGV[6] ~= '' then
  seen_key = 'handoff:shopper-id:' .. hid .. ':' .. ARGV[6]
  local seen = redis.call('GET', seen_key)
  if seen then
    return {'ok', hid, seen, redis.call('HGET', 'handoff:' .. hid, 'status') or 'pending',
            redis.call('HGET', 'handoff:' .. hid, 'agent') or '', redis.call('HGET', 'handoff:' .. hid, 'agent_name') or '',
            joined, '1'}
  end
end
local entry = redis.call('XADD', 'handoff:transcript:' .. hid, '*', 'from', 'shopper', 'text', ARGV[1], 'at', ARGV[2])
if seen_key ~= '' then redis.call('SET', seen_key, entry, 'EX', ARGV[5]) end
local record = 'handoff:' .. hid
local status = 'pending'
local agent = ''
local agent_name = ''
if redis.call('EXISTS', record) == 1 then
  redis.call('HSET', record, 'last_shopper_at', ARGV[2])
  status = redis.call('HGET', record, 'status') or 'pending'
  agent = redis.call('HGET', record, 'agent') or ''
  agent_name = redis.call('HGET', record, 'agent_name') or ''
end
return {'ok', hid, entry, status, agent, agent_name, joined, '0'}
"""

AGENT_MESSAGE = """
-- KEYS: record, transcript, outbox, day stats, recent first responses, replies by client id
-- ARGV: agent, now, text, display name, outbox message JSON, outbox maxlen, outbox ttl,
--       first response target s, recent limit, stats ttl, the client's id of this reply ('' for none)
-- A reply retried with the same client id (its first answer was lost) is written once: the retry
-- answers {'ok', entry, cursor, 'duplicate'} with the first write's ids.
if ARGV[11] ~= '' then
  local done = redis.call('HGET', KEYS[6], ARGV[11])
  if done then
    local bar = string.find(done, '|', 1, true)
    return {'ok', string.sub(done, 1, bar - 1), string.sub(done, bar + 1), 'duplicate'}
  end
end
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', '', ''} end
if status ~= 'assigned' then return {'not_assigned', status, ''} end
local owner = redis.call('HGET', KEYS[1], 'agent')
if owner ~= ARGV[1] then return {'not_yours', owner or '', ''} end
local entry = redis.call('XADD', KEYS[2], '*', 'from', 'agent', 'text', ARGV[3], 'at', ARGV[2], 'agent', ARGV[1], 'name', ARGV[4])
redis.call('HSET', KEYS[1], 'last_agent_at', ARGV[2])
local cursor = redis.call('XADD', KEYS[3], 'MAXLEN', '~', tonumber(ARGV[6]), '*', 'message', ARGV[5])
@announce(KEYS[3], ARGV[5], ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[7])
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[6], ARGV[11], entry .. '|' .. cursor)
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
if redis.call('HSETNX', KEYS[1], 'first_response_at', ARGV[2]) == 1 then
  local waited = tonumber(ARGV[2]) - tonumber(redis.call('HGET', KEYS[1], 'enqueued_at'))
  redis.call('HSET', KEYS[1], 'first_response_s', tostring(waited))
  redis.call('HINCRBYFLOAT', KEYS[4], 'first_response_sum_s', waited)
  redis.call('HINCRBY', KEYS[4], 'first_response_count', 1)
  if waited > tonumber(ARGV[8]) then redis.call('HINCRBY', KEYS[4], 'first_response_breaches', 1) end
  redis.call('EXPIRE', KEYS[4], ARGV[10])
  redis.call('LPUSH', KEYS[5], tostring(waited))
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[9]) - 1)
end
return {'ok', entry, cursor}
"""

SYSTEM_NOTICE = """
-- KEYS: transcript, outbox. ARGV: now, transcript text, outbox message JSON ('' for none), maxlen, ttl
local entry = redis.call('XADD', KEYS[1], '*', 'from', 'system', 'text', ARGV[2], 'at', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[4]), '*', 'message', ARGV[3])
  @announce(KEYS[2], ARGV[3], ARGV[4], ARGV[5])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return entry
"""

RESOLVE = """
-- KEYS: record, active(sender), agent load, last agent, rating pending, transcript, outbox, day stats, recent handles,
--       notes, history(sender), latest(sender)
-- ARGV: agent, now, code, handoff id, sticky ttl, rating ttl, transcript text, outbox messages JSON list,
--       outbox maxlen, outbox ttl (also the retention of the ended handoff), recent limit, stats ttl
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'assigned' then return {'not_assigned', status} end
local owner = redis.call('HGET', KEYS[1], 'agent')
if owner ~= ARGV[1] then return {'not_yours', owner or ''} end
local now = tonumber(ARGV[2])
local handle = now - tonumber(redis.call('HGET', KEYS[1], 'claimed_at'))
if handle < 0 then handle = 0 end
redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolved_at', ARGV[2], 'ended_at', ARGV[2],
           'resolution_code', ARGV[3], 'handle_s', tostring(handle))
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[5])
redis.call('SET', KEYS[5], ARGV[4], 'EX', ARGV[6])
redis.call('XADD', KEYS[6], '*', 'from', 'system', 'text', ARGV[7], 'at', ARGV[2])
for _, message in ipairs(cjson.decode(ARGV[8])) do
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', tonumber(ARGV[9]), '*', 'message', message)
  @announce(KEYS[7], message, ARGV[9], ARGV[10])
end
for _, joined in ipairs(redis.call('SMEMBERS', 'handoff:mirrors:' .. string.sub(KEYS[7], 8))) do
  redis.call('SET', 'handoff:rating_pending:' .. joined, ARGV[4], 'EX', ARGV[6])
end
@release(KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[7], ARGV[10])
redis.call('HINCRBY', KEYS[8], 'resolved', 1)
redis.call('HINCRBY', KEYS[8], 'code:' .. ARGV[3], 1)
redis.call('HINCRBYFLOAT', KEYS[8], 'handle_sum_s', handle)
redis.call('HINCRBY', KEYS[8], 'handle_count', 1)
local due = tonumber(redis.call('HGET', KEYS[1], 'sla_resolution_due') or '')
if due then
  redis.call('HINCRBY', KEYS[8], 'after_sales_resolved', 1)
  if now > due then redis.call('HINCRBY', KEYS[8], 'after_sales_breaches', 1) end
end
redis.call('EXPIRE', KEYS[8], ARGV[12])
redis.call('LPUSH', KEYS[9], tostring(handle))
redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[11]) - 1)
for i = 10, 12 do redis.call('EXPIRE', KEYS[i], ARGV[10]) end
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('EXPIRE', KEYS[6], ARGV[10])
return {'ok', tostring(handle)}
"""

TRANSFER = """
-- KEYS: record, from load, to load, to presence, transcript, outbox
-- ARGV: from, to, to capacity, now, transcript text, outbox message JSON, maxlen, ttl, to display name
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'assigned' then return {'not_assigned', status} end
local owner = redis.call('HGET', KEYS[1], 'agent')
if owner ~= ARGV[1] then return {'not_yours', owner or ''} end
if ARGV[1] == ARGV[2] then return {'same_agent', ''} end
if redis.call('EXISTS', KEYS[4]) == 0 then return {'offline', ARGV[2]} end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'at_capacity', ARGV[2]} end
local hid = redis.call('HGET', KEYS[1], 'handoff_id')
redis.call('HSET', KEYS[1], 'agent', ARGV[2], 'agent_name', ARGV[9], 'transferred_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'transfers', 1)
redis.call('SREM', KEYS[2], hid)
redis.call('SADD', KEYS[3], hid)
redis.call('XADD', KEYS[5], '*', 'from', 'system', 'text', ARGV[5], 'at', ARGV[4])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', tonumber(ARGV[7]), '*', 'message', ARGV[6])
@announce(KEYS[6], ARGV[6], ARGV[7], ARGV[8])
redis.call('EXPIRE', KEYS[6], ARGV[8])
return {'ok', ARGV[2]}
"""

CANCEL = """
-- KEYS: active(sender), record, queue, transcript. ARGV: handoff id, now, shopper text, retention s
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'gone' end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'assigned' then return 'assigned' end
redis.call('DEL', KEYS[1])
@release(KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if status then redis.call('HSET', KEYS[2], 'status', 'cancelled', 'ended_at', ARGV[2]) end
redis.call('XADD', KEYS[4], '*', 'from', 'shopper', 'text', ARGV[3], 'at', ARGV[2])
redis.call('XADD', KEYS[4], '*', 'from', 'system', 'text', '顾客取消了排队', 'at', ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[4])
if status then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
return 'ok'
"""

QUEUED_TO_CALLBACK = """
-- KEYS: record, queue, active(sender), callback, open callbacks, outbox, transcript, day stats
-- ARGV: handoff id, now, callback id, due, callback fields JSON (flat list), outbox message JSON, maxlen, ttl,
--       transcript text, stats ttl (the outbox ttl is also the retention of the ended handoff),
--       seconds it must have waited since it last entered the queue (0: any), extra day counter ('' for none)
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 0 end
local since = tonumber(redis.call('HGET', KEYS[1], 'enqueued_at') or '') or 0
local back = tonumber(redis.call('HGET', KEYS[1], 'requeued_at') or '')
if back and back > since then since = back end
if tonumber(ARGV[2]) - since < tonumber(ARGV[11]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'callback', 'ended_at', ARGV[2], 'callback_id', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('HSET', KEYS[4], unpack(cjson.decode(ARGV[5])))
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[3])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', tonumber(ARGV[7]), '*', 'message', ARGV[6])
@announce(KEYS[6], ARGV[6], ARGV[7], ARGV[8])
@release(KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[6], ARGV[8])
redis.call('XADD', KEYS[7], '*', 'from', 'system', 'text', ARGV[9], 'at', ARGV[2])
redis.call('HINCRBY', KEYS[8], 'callbacks', 1)
redis.call('HINCRBY', KEYS[8], 'converted', 1)
if ARGV[12] ~= '' then redis.call('HINCRBY', KEYS[8], ARGV[12], 1) end
redis.call('EXPIRE', KEYS[8], ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[7], ARGV[8])
return 1
"""

RECOVER_ASSIGNED = """
-- An assigned handoff whose agent has been offline long enough: back to the queue with its
-- original priority, or a callback ticket. Checks everything first, so of several desks sweeping
-- at once exactly one changes it.
-- KEYS: record, queue, agent load, presence(agent), presence until(agent), transcript, outbox, day stats,
--       callback, open callbacks
-- ARGV: handoff id, agent, now, offline bound s, mode ('requeue' or 'callback'), outbox message JSON, maxlen,
--       ttl (also the retention of an ended handoff), transcript text, stats ttl, callback id, callback due,
--       callback fields JSON (flat list)
-- Answers {'ok', mode}, {'online', ''}, {'waiting', offline s} or {'skip', why}.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'assigned' then
  if not status then redis.call('SREM', KEYS[3], ARGV[1]) end
  return {'skip', status or 'gone'}
end
if redis.call('HGET', KEYS[1], 'agent') ~= ARGV[2] then return {'skip', 'agent'} end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'online', ''} end
local now = tonumber(ARGV[3])
local since = tonumber(redis.call('GET', KEYS[5]) or '')
if not since then
  redis.call('HSETNX', KEYS[1], 'agent_offline_noticed_at', ARGV[3])
  since = tonumber(redis.call('HGET', KEYS[1], 'agent_offline_noticed_at'))
end
for _, name in ipairs({'claimed_at', 'transferred_at', 'last_agent_at'}) do
  local moment = tonumber(redis.call('HGET', KEYS[1], name) or '')
  if moment and moment > since then since = moment end
end
if since > now then since = now end
if now - since < tonumber(ARGV[4]) then return {'waiting', tostring(now - since)} end
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[1], 'agent_offline_noticed_at')
redis.call('XADD', KEYS[6], '*', 'from', 'system', 'text', ARGV[9], 'at', ARGV[3])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', tonumber(ARGV[7]), '*', 'message', ARGV[6])
@announce(KEYS[7], ARGV[6], ARGV[7], ARGV[8])
redis.call('EXPIRE', KEYS[7], ARGV[8])
if ARGV[5] == 'requeue' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'requeued_at', ARGV[3], 'previous_agent', ARGV[2], 'offered_to', '', 'offer_until', '0')
  redis.call('HDEL', KEYS[1], 'agent', 'agent_name')
  redis.call('HINCRBY', KEYS[1], 'requeues', 1)
  redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'score'), ARGV[1])
  redis.call('HINCRBY', KEYS[8], 'requeued_agent_offline', 1)
else
  redis.call('HSET', KEYS[1], 'status', 'callback', 'ended_at', ARGV[3], 'callback_id', ARGV[11], 'previous_agent', ARGV[2])
  redis.call('HSET', KEYS[9], unpack(cjson.decode(ARGV[13])))
  redis.call('ZADD', KEYS[10], ARGV[12], ARGV[11])
  @release(KEYS[1], ARGV[1])
  redis.call('HINCRBY', KEYS[8], 'callbacks', 1)
  redis.call('HINCRBY', KEYS[8], 'converted', 1)
  redis.call('HINCRBY', KEYS[8], 'callbacks_agent_offline', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('EXPIRE', KEYS[6], ARGV[8])
end
redis.call('EXPIRE', KEYS[8], ARGV[10])
return {'ok', ARGV[5]}
"""

CREATE_CALLBACK = """
-- KEYS: callback, open callbacks, day stats. ARGV: callback id, due, fields JSON (flat list), reason, stats ttl
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'callbacks', 1)
redis.call('HINCRBY', KEYS[3], 'reason:' .. ARGV[4], 1)
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 1
"""

COMPLETE_CALLBACK = """
-- KEYS: callback, open callbacks, done callbacks, day stats
-- ARGV: callback id, agent, now, code, note, stats ttl, retention s
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'open' then return {'done', redis.call('HGET', KEYS[1], 'done_by') or ''} end
redis.call('HSET', KEYS[1], 'status', 'done', 'done_at', ARGV[3], 'done_by', ARGV[2], 'resolution_code', ARGV[4], 'note', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'callbacks_done', 1)
local due_end = tonumber(redis.call('HGET', KEYS[1], 'window_end') or '')
if due_end and tonumber(ARGV[3]) > due_end then redis.call('HINCRBY', KEYS[4], 'callbacks_late', 1) end
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[7]))
return {'ok', ''}
"""

RATE = """
-- KEYS: rating pending(sender), day stats. ARGV: score, now, stats ttl
local hid = redis.call('GET', KEYS[1])
if not hid then return false end
local record = 'handoff:' .. hid
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', record) == 0 then return false end
if redis.call('HEXISTS', record, 'rating') == 1 then return {'duplicate', hid} end
redis.call('HSET', record, 'rating', ARGV[1], 'rated_at', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'rating_count', 1)
redis.call('HINCRBY', KEYS[2], 'rating_sum', tonumber(ARGV[1]))
redis.call('HINCRBY', KEYS[2], 'rating:' .. ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {'ok', hid}
"""


def _announce(outbox: str, message: str, maxlen: str, ttl: str) -> str:
    origin = f"string.sub({outbox}, {len('outbox:') + 1})"
    copy = ("local copy = cjson.decode(" + message + ") copy['recipient_id'] = joined "
            "redis.call('XADD', 'outbox:' .. joined, 'MAXLEN', '~', tonumber(" + maxlen + "), '*', 'message', cjson.encode(copy)) "
            "redis.call('EXPIRE', 'outbox:' .. joined, " + ttl + ") " + lua_notice("'outbox:' .. joined"))
    return (f"{lua_notice(outbox)} "
            f"for _, joined in ipairs(redis.call('SMEMBERS', 'handoff:mirrors:' .. {origin})) do {copy} end")


def _release(record: str, handoff_id: str) -> str:
    return ("do local primary = redis.call('HGET', " + record + ", 'sender') if primary then "
            "for _, joined in ipairs(redis.call('SMEMBERS', 'handoff:mirrors:' .. primary)) do "
            "if redis.call('GET', 'handoff:active:' .. joined) == " + handoff_id + " then redis.call('DEL', 'handoff:active:' .. joined) end end "
            "redis.call('DEL', 'handoff:mirrors:' .. primary) "
            "if redis.call('GET', 'handoff:active:' .. primary) == " + handoff_id + " then redis.call('DEL', 'handoff:active:' .. primary) end "
            "end end")


def _expand_macros() -> None:
    announce = re.compile(r"@announce\(([^,()]+), ([^,()]+), ([^,()]+), ([^,()]+)\)")
    release = re.compile(r"@release\(([^,()]+), ([^,()]+)\)")
    for name, value in list(globals().items()):
        if name.isupper() and isinstance(value, str) and "@" in value:
            value = announce.sub(lambda match: _announce(*match.groups()), value)
            globals()[name] = release.sub(lambda match: _release(*match.groups()), value)


_expand_macros()
