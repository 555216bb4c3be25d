//! The `watch_events` row and the reads the event pipeline makes while landing: which events a
//! resumed batch already inserted, and, once per member counted before the profile state existed,
//! that member's history.

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::query::RowCursor;
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

/// Inserts `rows` into `watch_events` in one INSERT. On a cluster with an insert quorum, ClickHouse
/// 18.16 refuses an insert into a shard while the quorum of the previous one is not reached yet
/// (code 286, which it checks before writing anything; current releases have
/// `insert_quorum_parallel`). Landers and workers inserting at once meet that often and for
/// milliseconds, so it is retried here, briefly (about 5 s in all), before it counts as the
/// cluster being unavailable.
pub async fn insert(ch: &ClickHouse, rows: &[&ChEvent]) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut delay = std::time::Duration::from_millis(5);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match insert_once(ch, rows).await {
            Err(clickhouse::error::Error::BadResponse(text))
                if ch.cluster.is_some()
                    && crate::error::clickhouse_code(&text) == Some("286")
                    && waited < std::time::Duration::from_secs(5) =>
            {
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(std::time::Duration::from_millis(250));
            }
            other => return Ok(other?),
        }
    }
}

async fn insert_once(ch: &ClickHouse, rows: &[&ChEvent]) -> Result<(), clickhouse::error::Error> {
    let mut insert = ch.client.insert::<ChEvent>("watch_events").await?;
    for r in rows {
        insert.write(*r).await?;
    }
    insert.end().await
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

/// One event of a member's history, as the one-time rebuild of their profile state reads it.
#[derive(Debug, Clone, Row, Deserialize, PartialEq, Eq)]
pub struct HistoryRow {
    #[serde(with = "ch_id")]
    pub member_id: MemberId,
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    #[serde(with = "clickhouse::serde::chrono::date")]
    pub local_date: NaiveDate,
    pub category: String,
    pub watched_seconds: u32,
}

/// The whole watch history of `members` (of one client), as a stream. Read only to rebuild the
/// profile state of members counted before that state existed, once per member (see
/// `pipeline::land_pending`); landings never read history otherwise. `IN` a set, unlike `has`,
/// lets ClickHouse (18.16 too) read only these members' ranges of the table's key.
pub fn member_history(
    ch: &ClickHouse,
    client_id: ClientId,
    members: &[MemberId],
) -> AppResult<RowCursor<HistoryRow>> {
    let strs: Vec<String> = members.iter().map(MemberId::to_string).collect();
    // On a cluster, `watch_events` is the table every replica holds before an insert returns (the
    // quorum); `member_watch_history` is filled by a view and catches up by replication.
    let table = if ch.cluster.is_some() {
        "watch_events"
    } else {
        "member_watch_history"
    };
    Ok(ch
        .client
        .query(&format!(
            "SELECT member_id, event_id, local_date, category, watched_seconds
             FROM {table}
             WHERE client_id = ?
               AND member_id IN (SELECT arrayJoin(arrayMap(x -> toUUID(x), ?)))"
        ))
        .bind(client_id.to_string())
        .bind(strs)
        .fetch::<HistoryRow>()?)
}
