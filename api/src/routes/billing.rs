//! `GET /partner/billing` (partner JWT): the month's billable members.

use chrono::{DateTime, Utc};
use portal_shared::billing::{self, Month};
use portal_shared::pagination::Page;
use portal_shared::repo::clients;
use salvo::oapi::extract::QueryParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{staff, state};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillableMemberDto {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub registered_at: DateTime<Utc>,
    pub watch_time_minutes: i64,
    pub classes_watched: u64,
    pub first_active_at: DateTime<Utc>,
    pub last_active_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingReport {
    pub month: u32,
    pub year: i32,
    /// Members who watched at least one class in the month (partner's timezone).
    pub active_member_count: usize,
    pub members: Vec<BillableMemberDto>,
    pub pagination: PaginationDoc,
}

/// Billing report for a month (`month` 1–12, `year`; default the current month). A month in the
/// future answers 400. Members are ordered by name (regardless of case), then id; the page is cut
/// in the database, so a page costs the same whatever the number of billable members.
#[endpoint(
    tags("billing"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
        ("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1 to 12; with `year`, not after the current month"),
        ("year" = Option<i32>, Query, minimum = 2000, maximum = 2100),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 4194303),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100),
    )
)]
pub async fn report(
    month: QueryParam<String, false>,
    year: QueryParam<String, false>,
    page: QueryParam<String, false>,
    limit: QueryParam<String, false>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<BillingReport>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let p = Page::parse(page.as_deref(), limit.as_deref(), 100)?;
    let today = clients::today(clients::timezone(&st.db, s.client_id).await?);
    let m = Month::parse(month.as_deref(), year.as_deref(), today)?;
    let (rows, total) = billing::report_page(&st.db, &st.ch, s.client_id, m, p).await?;
    let members = rows
        .into_iter()
        .map(|b| BillableMemberDto {
            id: b.id,
            name: b.name,
            email: b.email,
            registered_at: b.registered_at,
            watch_time_minutes: b.watch_time_minutes,
            classes_watched: b.classes_watched,
            first_active_at: b.first_active_at,
            last_active_at: b.last_active_at,
        })
        .collect();
    Ok(ok(BillingReport {
        month: m.month,
        year: m.year,
        active_member_count: total as usize,
        members,
        pagination: p.pagination(total).into(),
    }))
}
