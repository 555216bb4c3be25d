//! `GET /partner/billing` (partner JWT): the month's billable members.

use chrono::Utc;
use portal_shared::ch::billing;
use portal_shared::domain::ids::ClientId;
use portal_shared::domain::month::MonthQuery;
use portal_shared::domain::pagination::Page;
use portal_shared::error::AppResult;
use portal_shared::pg::clients;
use salvo::oapi::extract::QueryParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{staff, state};
use crate::params::Paging;
use crate::reads::{day_end, CachedJson, Computed, ReadQuery};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BillingReport {
    pub month: u32,
    pub year: i32,
    /// Members who watched at least one class in the month (partner's timezone).
    pub active_member_count: usize,
    pub members: Vec<billing::BillableMember>,
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
    )
)]
pub async fn report(
    month: QueryParam<String, false>,
    year: QueryParam<String, false>,
    paging: Paging<100>,
    depot: &mut Depot,
) -> ApiResult<CachedJson<Envelope<BillingReport>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let page = paging.0;
    let month = MonthQuery::parse(month.as_deref(), year.as_deref())?;
    st.reads
        .answer(
            s.client_id,
            ReadQuery::Billing { month, page },
            report_of(&st, s.client_id, month, page),
        )
        .await
}

async fn report_of(
    st: &AppState,
    client_id: ClientId,
    month: MonthQuery,
    p: Page,
) -> AppResult<Computed<BillingReport>> {
    let tz = clients::timezone(&st.db, client_id).await?;
    let now = Utc::now();
    let m = month.resolve(now.with_timezone(&tz).date_naive())?;
    let (rows, total) = billing::report_page(&st.db, &st.ch, client_id, m, p).await?;
    Ok(Computed {
        data: BillingReport {
            month: m.month,
            year: m.year,
            active_member_count: total as usize,
            members: rows,
            pagination: p.pagination(total).into(),
        },
        day_ends: day_end(tz, now),
    })
}
