//! The Lua scripts behind every leader-only change. Each runs atomically in
//! Redis; each checks ownership or the epoch before it writes anything.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: lease, epoch, isr-index, lease-client. ARGV: node id, ttl ms,
/// epoch floor, key prefix, the caller's Redis client id, and optionally
/// the holder and client id of a lease whose holder is gone (see
/// `ClusterStore::take_over`).
/// Returns the new epoch, 0 if the lease is held by another node, -1 if this
/// node is missing from the ISR of a partition that has committed data.
/// Run with EVAL in a pipeline after `CLIENT ID`, so it is Lua source.
pub const ACQUIRE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  if not (ARGV[6] and holder == ARGV[6] and redis.call('GET', KEYS[4]) == ARGV[7]) then
    return 0
  end
end
local isrs = redis.call('HGETALL', KEYS[3])
for i = 1, #isrs, 2 do
  local hwm = tonumber(redis.call('GET', ARGV[4] .. ':hwm:' .. isrs[i]) or '0')
  if hwm > 0 then
    local member = false
    for _, id in ipairs(cjson.decode(isrs[i + 1])) do
      if id == ARGV[1] then member = true end
    end
    if not member then return -1 end
  end
end
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[3])
if epoch < floor then epoch = floor end
epoch = epoch + 1
redis.call('SET', KEYS[2], epoch)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[4], ARGV[5], 'PX', ARGV[2])
return epoch
"#;

/// KEYS: lease, epoch, lease-client. ARGV: node id, epoch, ttl ms, the
/// caller's Redis client id. 1 if renewed. Lua source, as [`ACQUIRE`].
pub const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"#;

/// KEYS: lease, epoch, lease-client. ARGV: node id, epoch. 1 if released.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// KEYS: epoch, hwm. ARGV: epoch, new hwm.
/// Returns the stored HWM (raised if lower), or -1 if the epoch is stale.
pub static ADVANCE_HWM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local hwm = tonumber(redis.call('GET', KEYS[2]) or '0')
local new = tonumber(ARGV[2])
if new > hwm then
  redis.call('SET', KEYS[2], ARGV[2])
  return new
end
return hwm
"#,
    )
});

/// KEYS: epoch, isr, isr-index. ARGV: epoch, isr json, "topic:partition".
/// 1 if set, -1 if the epoch is stale.
pub static SET_ISR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[2])
return 1
"#,
    )
});

/// KEYS: topics, topic-configs. ARGV: name, partitions, config JSON.
/// 1 if created (with its config), 0 if the topic existed (nothing changed).
pub static CREATE_TOPIC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"#,
    )
});

/// KEYS: epoch, group, owners, groups. ARGV: epoch, group name, state JSON,
/// generation, member count, then `topic:partition`, member pairs (the
/// owners). 1 if saved, -1 if the epoch is stale.
pub static SAVE_GROUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[2], 'state', ARGV[3], 'generation', ARGV[4], 'members', ARGV[5])
redis.call('DEL', KEYS[3])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('SADD', KEYS[4], ARGV[2])
return 1
"#,
    )
});

/// KEYS: epoch, group, owners, offsets. ARGV: epoch, generation, member id,
/// then `topic:partition`, offset pairs. Stores every offset or none:
/// 1 if stored, -1 if the epoch is stale, -2 if the generation is not the
/// group's, -3 if the member does not own one of the partitions.
pub static COMMIT_OFFSETS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('HGET', KEYS[2], 'generation') ~= ARGV[2] then return -2 end
for i = 4, #ARGV, 2 do
  if redis.call('HGET', KEYS[3], ARGV[i]) ~= ARGV[3] then return -3 end
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
end
return 1
"#,
    )
});

/// KEYS: epoch, group, offsets, groups. ARGV: epoch, group name, then
/// `topic:partition`, offset pairs. 1 if stored, -1 if the epoch is stale,
/// -2 if the group has members.
pub static RESET_OFFSETS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if tonumber(redis.call('HGET', KEYS[2], 'members') or '0') > 0 then return -2 end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('SADD', KEYS[4], ARGV[2])
return 1
"#,
    )
});

/// KEYS: epoch, topics. ARGV: epoch, name, partitions. Raises a topic's
/// partition count: the count now stored (unchanged if it was not lower),
/// 0 if the topic does not exist, -1 if the epoch is stale.
pub static GROW_TOPIC: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if current == 0 then return 0 end
local wanted = tonumber(ARGV[3])
if wanted > current then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  return wanted
end
return current
"#,
    )
});
