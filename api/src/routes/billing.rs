//! `GET /partner/billing` (partner JWT): the month's billable members.

use portal_shared::ch::billing;
use portal_shared::domain::month::Month;
use portal_shared::pg::clients;
use salvo::oapi::extract::QueryParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{staff, state};
use crate::params::Paging;

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
) -> ApiResult<Json<Envelope<BillingReport>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let p = paging.0;
    let today = clients::today(clients::timezone(&st.db, s.client_id).await?);
    let m = Month::parse(month.as_deref(), year.as_deref(), today)?;
    let (rows, total) = billing::report_page(&st.db, &st.ch, s.client_id, m, p).await?;
    Ok(ok(BillingReport {
        month: m.month,
        year: m.year,
        active_member_count: total as usize,
        members: rows,
        pagination: p.pagination(total).into(),
    }))
}
