//! Monthly billing: a member is billable for a month when they watched at least one class in it
//! (the partner's timezone days). Figures come from the same landed events as analytics.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ch::ClickHouse;
use crate::domain::ids::{ClientId, MemberId};
use crate::domain::minutes;
use crate::domain::month::Month;
use crate::domain::pagination::Page;
use crate::error::AppResult;
use crate::pg::billing::Person;

/// A member billable for a month, with the month's figures.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "BillableMember"))]
pub struct BillableMember {
    pub id: MemberId,
    pub name: String,
    pub email: String,
    pub registered_at: DateTime<Utc>,
    pub watch_time_minutes: i64,
    pub classes_watched: u64,
    pub first_active_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
}

/// The ids of the month's billable members (ClickHouse decides who watched in the month), read
/// as a stream: 16 bytes a member. Everything else is fetched a page at a time.
pub async fn billable_ids(
    ch: &ClickHouse,
    client_id: ClientId,
    month: Month,
) -> AppResult<Vec<MemberId>> {
    let mut cursor = ch
        .client
        .query(
            "SELECT DISTINCT toString(member_id) FROM watch_events
             WHERE client_id = ? AND local_date >= toDate(?) AND local_date <= toDate(?)",
        )
        .bind(client_id.to_string())
        .bind(month.first_day().format("%Y-%m-%d").to_string())
        .bind(month.last_day().format("%Y-%m-%d").to_string())
        .fetch::<String>()?;
    let mut ids = Vec::new();
    while let Some(id) = cursor.next().await? {
        if let Ok(id) = Uuid::parse_str(&id) {
            ids.push(MemberId(id));
        }
    }
    Ok(ids)
}

/// One page of the month's billable members in report order, and how many there are in all.
/// Postgres sorts and slices (only the page's rows leave it); ClickHouse then sums the page's
/// members only.
pub async fn report_page(
    db: &PgPool,
    ch: &ClickHouse,
    client_id: ClientId,
    month: Month,
    page: Page,
) -> AppResult<(Vec<BillableMember>, i64)> {
    let ids = billable_ids(ch, client_id, month).await?;
    if ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let (people, total) = crate::pg::billing::page(db, client_id, &ids, page).await?;
    drop(ids);
    Ok((with_figures(ch, client_id, month, people).await?, total))
}

/// Adds each person's figures of the month (one ClickHouse aggregate over these members only),
/// keeping their order. The ids go in as `IN (subquery)`, a set built once: `has(arrayMap(…))`
/// is evaluated row by row on ClickHouse 18.16 (seconds for a page of a large partner).
pub async fn with_figures(
    ch: &ClickHouse,
    client_id: ClientId,
    month: Month,
    people: Vec<Person>,
) -> AppResult<Vec<BillableMember>> {
    if people.is_empty() {
        return Ok(Vec::new());
    }
    let strs: Vec<String> = people.iter().map(|p| p.id.to_string()).collect();
    let rows: Vec<(String, u64, u64, u32, u32)> = ch
        .client
        .query(
            "SELECT toString(member_id), sum(watched_seconds), count(), toUInt32(min(started_at)), toUInt32(max(started_at))
             FROM watch_events
             WHERE client_id = ? AND local_date >= toDate(?) AND local_date <= toDate(?)
               AND member_id IN (SELECT toUUID(arrayJoin(?)))
             GROUP BY member_id",
        )
        .bind(client_id.to_string())
        .bind(month.first_day().format("%Y-%m-%d").to_string())
        .bind(month.last_day().format("%Y-%m-%d").to_string())
        .bind(strs)
        .fetch_all()
        .await?;
    let figures: HashMap<MemberId, (u64, u64, u32, u32)> = rows
        .into_iter()
        .filter_map(|(m, s, c, f, l)| {
            Uuid::parse_str(&m)
                .ok()
                .map(|id| (MemberId(id), (s, c, f, l)))
        })
        .collect();
    Ok(people
        .into_iter()
        // Every billable member has figures (events are never removed from a month).
        .filter_map(|p| {
            let (s, c, f, l) = *figures.get(&p.id)?;
            Some(BillableMember {
                id: p.id,
                name: p.name,
                email: p.email,
                registered_at: p.registered_at,
                watch_time_minutes: minutes(s as i64),
                classes_watched: c,
                first_active_at: DateTime::from_timestamp(i64::from(f), 0).unwrap_or_default(),
                last_active_at: DateTime::from_timestamp(i64::from(l), 0).unwrap_or_default(),
            })
        })
        .collect())
}
