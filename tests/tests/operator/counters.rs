//! Redis counters seeded as the ext_proc would have left them, for the operator to read.

use anyhow::Result;
use redis::aio::ConnectionLike;
use tally_config::keys;
use tally_tests::fixtures::redis::RedisServer;

/// The current monthly period, as counter keys name it (`2026-01`).
pub fn this_month() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string()
}

/// Sets `fields` of a team's counter hash for `period`.
pub async fn set_counter(
    conn: &mut impl ConnectionLike,
    team: &str,
    period: &str,
    fields: &[(&str, i64)],
) -> Result<()> {
    set_scope_counter(conn, team, period, &keys::Scope::Team, fields).await
}

/// Sets `fields` of the counter hash of one scope (team, workflow, tenant) for `period`.
pub async fn set_scope_counter(
    conn: &mut impl ConnectionLike,
    team: &str,
    period: &str,
    scope: &keys::Scope,
    fields: &[(&str, i64)],
) -> Result<()> {
    let mut hset = redis::cmd("HSET");
    hset.arg(keys::counter(team, period, scope));
    for (field, value) in fields {
        hset.arg(*field).arg(*value);
    }
    let _: () = hset.query_async(conn).await?;
    Ok(())
}

/// Seeds a team's counters for `period` as the ext_proc would have left them.
pub async fn set_team(
    redis: &RedisServer,
    team: &str,
    period: &str,
    spent: i64,
    reserved: i64,
    requests: i64,
) -> Result<()> {
    let fields = [
        (keys::field::SPENT, spent),
        (keys::field::RESERVED, reserved),
        (keys::field::REQUESTS, requests),
        (keys::field::BLOCKED, 0),
    ];
    set_counter(&mut redis.connection().await, team, period, &fields).await
}
