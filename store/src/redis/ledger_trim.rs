//! The ledger stream's trimming, as a Lua function SETTLE runs after each append: what may be
//! cut (only what every consumer group acknowledged, down to the newest `keep`) and the last
//! resort when the exporter falls too far behind.

/// Trims a team's ledger stream after an append. Without a consumer group it keeps the newest
/// `keep` entries (`MAXLEN ~`). With one (the ledger exporter's), only entries every group has
/// acknowledged go, oldest first, down to the newest `keep`: the exporter never loses a record to
/// trimming. Last resort, when the exporter falls `keep` entries behind: the stream is capped at
/// `LEDGER_GUARD` × `keep`, and the unacknowledged entries that cut away are added to
/// `<stream key>:dropped` (same hash tag, same slot; `tally_config::keys::ledger_dropped`), which
/// the exporter reports and alerts on.
/// Costs O(1) per call while under `keep`; above it, at most ~1000 entries are cut per call.
pub(super) const TRIM_LEDGER_FN: &str = r#"
local LEDGER_GUARD = 2
local function id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function next_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end
local function ack_floor(key)
  local floor = nil
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    local first = next_id(f['last-delivered-id'])
    if f['pending'] > 0 then first = redis.call('XPENDING', key, f['name'])[2] end
    if floor == nil or id_less(first, floor) then floor = first end
  end
  return floor
end
local function trim_ledger(key, keep)
  local len = redis.call('XLEN', key)
  if len <= keep then return end
  local floor = ack_floor(key)
  if not floor then
    redis.call('XTRIM', key, 'MAXLEN', '~', keep)
    return
  end
  local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)[1][1]
  if id_less(oldest, floor) then
    local head = redis.call('XRANGE', key, '-', '+', 'COUNT', math.min(len - keep, 1000) + 1)
    local cut = head[#head][1]
    if id_less(floor, cut) then cut = floor end
    redis.call('XTRIM', key, 'MINID', cut)
  end
  local over = redis.call('XLEN', key) - keep * LEDGER_GUARD
  if over > 0 then
    local lost = 0
    for _, e in ipairs(redis.call('XRANGE', key, '-', '+', 'COUNT', over)) do
      if not id_less(e[1], floor) then lost = lost + 1 end
    end
    redis.call('XTRIM', key, 'MAXLEN', keep * LEDGER_GUARD)
    if lost > 0 then redis.call('INCRBY', key .. ':dropped', lost) end
  end
end
"#;
