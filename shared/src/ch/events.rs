//! The `watch_events` row and the reads the event pipeline makes while landing: which events a
//! resumed batch already inserted, and the members' recomputed profiles.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ch::ClickHouse;
use crate::domain::ids::{ClientId, MemberId};
use crate::error::AppResult;

/// A typed id as ClickHouse's `UUID` in RowBinary (the crate's uuid encoding).
mod ch_id {
    use serde::{Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<T: Copy + Into<Uuid>, S: Serializer>(id: &T, s: S) -> Result<S::Ok, S::Error> {
        clickhouse::serde::uuid::serialize(&(*id).into(), s)
    }

    pub fn deserialize<'de, T: From<Uuid>, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        clickhouse::serde::uuid::deserialize(d).map(T::from)
    }
}

/// A row of `watch_events` in ClickHouse.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChEvent {
    #[serde(with = "ch_id")]
    pub client_id: ClientId,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "ch_id")]
    pub member_id: MemberId,
    pub class_id: String,
    pub category: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::chrono::date")]
    pub local_date: NaiveDate,
    pub watched_seconds: u32,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    pub received_at: DateTime<Utc>,
}

/// Which of `ids` are already in `watch_events` (used when finishing an interrupted batch).
pub async fn existing(ch: &ClickHouse, client_id: ClientId, ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let strs: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let found: Vec<String> = ch
        .client
        .query(
            "SELECT toString(event_id) FROM watch_events
             WHERE client_id = ? AND has(arrayMap(x -> toUUID(x), ?), event_id)",
        )
        .bind(client_id.to_string())
        .bind(strs)
        .fetch_all()
        .await?;
    Ok(found
        .iter()
        .filter_map(|s| Uuid::parse_str(s).ok())
        .collect())
}

/// Active days and favourite category per member, recomputed from ClickHouse.
pub async fn member_profiles(
    ch: &ClickHouse,
    client_id: ClientId,
    members: &[MemberId],
) -> AppResult<Vec<(MemberId, i32, Option<String>)>> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let strs: Vec<String> = members.iter().map(MemberId::to_string).collect();
    let by_category = ch
        .client
        .query(
            "SELECT toString(member_id), category, sum(watched_seconds)
             FROM member_watch_history
             WHERE client_id = ? AND has(arrayMap(x -> toUUID(x), ?), member_id)
             GROUP BY member_id, category",
        )
        .bind(client_id.to_string())
        .bind(&strs)
        .fetch_all::<(String, String, u64)>();
    let active_days = ch
        .client
        .query(
            "SELECT toString(member_id), uniqExact(local_date) FROM member_watch_history
             WHERE client_id = ? AND has(arrayMap(x -> toUUID(x), ?), member_id)
             GROUP BY member_id",
        )
        .bind(client_id.to_string())
        .bind(&strs)
        .fetch_all::<(String, u64)>();
    let (rows, days) = tokio::try_join!(by_category, active_days)?;
    let mut best: HashMap<String, (String, u64)> = HashMap::new();
    for (m, cat, secs) in rows {
        let e = best.entry(m).or_insert((cat.clone(), secs));
        if secs > e.1 || (secs == e.1 && cat < e.0) {
            *e = (cat, secs);
        }
    }
    Ok(days
        .into_iter()
        .filter_map(|(m, n)| {
            let id = MemberId(Uuid::parse_str(&m).ok()?);
            Some((id, n as i32, best.get(&m).map(|(c, _)| c.clone())))
        })
        .collect())
}
