//! `GET /partner/dashboard`, `GET /partner/analytics` and `GET /partner/funnel` (partner JWT).
//! Answers come from the read cache ([`crate::reads`]) when it holds them; each handler's
//! `…_of` function computes one from the databases.

use chrono::{DateTime, Utc};
use portal_shared::ch::analytics::{self as stats, DayRange, RangeSpec};
use portal_shared::domain::ids::ClientId;
use portal_shared::domain::minutes;
use portal_shared::error::AppResult;
use portal_shared::pg::{clients, members};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::Envelope;
use crate::error::ApiResult;
use crate::middleware::{staff, state};
use crate::params::RangeQuery;
use crate::reads::{day_end, CachedJson, Computed, ReadQuery};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trends {
    /// New members, last 30 days against the 30 before (`"+12%"`), null when the earlier is 0.
    pub members_change: Option<String>,
    /// Watch time, last 30 days against the 30 before.
    pub watch_time_change: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"totalMembers": 250, "activeMembers": 180, "totalWatchTimeMinutes": 45000, "totalClassesWatched": 1200, "trends": {"membersChange": "+12%", "watchTimeChange": "+8%"}})))]
pub struct Dashboard {
    pub total_members: i64,
    /// Members who watched anything in the last 30 days (client's timezone).
    pub active_members: i64,
    /// All time.
    pub total_watch_time_minutes: i64,
    /// All time; class views.
    pub total_classes_watched: i64,
    pub trends: Trends,
}

/// The partner's overview.
#[endpoint(tags("insights"), security(("bearer" = [])), status_codes(200, 401, 503))]
pub async fn dashboard(depot: &mut Depot) -> ApiResult<CachedJson<Envelope<Dashboard>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    st.reads
        .answer(
            s.client_id,
            ReadQuery::Dashboard,
            dashboard_of(&st, s.client_id),
        )
        .await
}

async fn dashboard_of(st: &AppState, client_id: ClientId) -> AppResult<Computed<Dashboard>> {
    let tz = clients::timezone(&st.db, client_id).await?;
    let now = Utc::now();
    let since = members::active_since(tz, now);
    let today = now.with_timezone(&tz).date_naive();
    let current = DayRange::last(30, today);
    let previous = DayRange::last(30, current.start.pred_opt().unwrap_or(current.start));
    let prev_since = members::active_since(tz, now - chrono::Duration::days(30));
    let c = members::totals(&st.db, client_id, since, prev_since).await?;
    let (w_now, w_before) = tokio::try_join!(
        stats::watched_seconds(&st.ch, client_id, current),
        stats::watched_seconds(&st.ch, client_id, previous),
    )?;
    Ok(Computed {
        data: Dashboard {
            total_members: c.total,
            active_members: c.active,
            total_watch_time_minutes: minutes(c.watch_seconds),
            total_classes_watched: c.class_views,
            trends: Trends {
                members_change: stats::trend(c.registered_since as f64, c.registered_before as f64),
                watch_time_change: stats::trend(w_now as f64, w_before as f64),
            },
        },
        day_ends: day_end(tz, now),
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    pub start_date: String,
    pub end_date: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsTotals {
    pub watch_time_minutes: i64,
    pub classes_watched: u64,
    pub active_members: u64,
    pub avg_watch_time_minutes_per_active_member: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Analytics {
    pub range: Range,
    pub totals: AnalyticsTotals,
    /// Every day of the range, zeros included.
    pub watch_time_by_day: Vec<stats::DayPoint>,
    /// Top 10 by watch time.
    pub popular_categories: Vec<stats::CategoryStat>,
    /// Top 10 by views.
    pub popular_classes: Vec<stats::ClassStat>,
}

/// The checked `period` or `startDate`..`endDate` (analytics and funnel read the same
/// parameters); placed on the calendar by [`days_of`].
fn range_spec(range: &RangeQuery) -> AppResult<RangeSpec> {
    RangeSpec::parse(
        range.period.as_deref(),
        range.start_date.as_deref(),
        range.end_date.as_deref(),
    )
}

/// The client's timezone days of `spec`, and the end of the client's current day.
async fn days_of(
    st: &AppState,
    client_id: ClientId,
    spec: RangeSpec,
) -> AppResult<(DayRange, DateTime<Utc>)> {
    let tz = clients::timezone(&st.db, client_id).await?;
    let now = Utc::now();
    Ok((
        spec.resolve(now.with_timezone(&tz).date_naive()),
        day_end(tz, now),
    ))
}

/// Usage analytics: `period` = week | month | quarter (the last 7 / 30 / 90 days including today,
/// default month) or `startDate` + `endDate` (YYYY-MM-DD, inclusive, at most 366 days). Days are
/// the client's timezone days.
#[endpoint(
    tags("insights"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503)
)]
pub async fn analytics(
    range: RangeQuery,
    depot: &mut Depot,
) -> ApiResult<CachedJson<Envelope<Analytics>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let spec = range_spec(&range)?;
    st.reads
        .answer(
            s.client_id,
            ReadQuery::Analytics(spec),
            analytics_of(&st, s.client_id, spec),
        )
        .await
}

async fn analytics_of(
    st: &AppState,
    client_id: ClientId,
    spec: RangeSpec,
) -> AppResult<Computed<Analytics>> {
    let (r, day_ends) = days_of(st, client_id, spec).await?;
    let catalogue = st.catalogue.get(&st.db).await?;
    let (totals, days, cats, classes) = tokio::try_join!(
        stats::totals(&st.ch, client_id, r),
        stats::by_day(&st.ch, client_id, r),
        stats::top_categories(&st.ch, client_id, r),
        stats::top_classes(&st.ch, client_id, r, &catalogue),
    )?;
    let avg = if totals.active_members == 0 {
        0
    } else {
        let n = totals.active_members as i64;
        (totals.watched_seconds as i64 + 30 * n) / (60 * n)
    };
    Ok(Computed {
        data: Analytics {
            range: Range {
                start_date: r.start.to_string(),
                end_date: r.end.to_string(),
            },
            totals: AnalyticsTotals {
                watch_time_minutes: minutes(totals.watched_seconds as i64),
                classes_watched: totals.views,
                active_members: totals.active_members,
                avg_watch_time_minutes_per_active_member: avg,
            },
            watch_time_by_day: days,
            popular_categories: cats,
            popular_classes: classes,
        },
        day_ends,
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"range": {"startDate": "2026-11-01", "endDate": "2026-11-30"}, "vouchersIssued": 120, "registered": 85, "active": 60, "billable": 64})))]
pub struct Funnel {
    pub range: Range,
    /// Vouchers created on a day of the range, whatever became of them since.
    pub vouchers_issued: i64,
    /// Members who registered on a day of the range.
    pub registered: i64,
    /// Distinct members with at least one watch event on a day of the range (the `activeMembers`
    /// of `/partner/analytics` for the same range).
    pub active: u64,
    /// Distinct members billable for at least one calendar month the range touches (billable for
    /// a month: watched at least one class in it, as `/partner/billing` counts). For a range inside
    /// one month this is that month's `activeMemberCount`; for a range spanning parts of several
    /// months it counts members active anywhere in those whole months, so it may exceed `active`.
    pub billable: u64,
}

/// The onboarding funnel: vouchers issued → members registered → active → billable, for
/// `period` = week | month | quarter (the last 7 / 30 / 90 days including today, default month) or
/// `startDate` + `endDate` (YYYY-MM-DD, inclusive, at most 366 days), in the partner's timezone
/// days. The stages count different people over the same days (not one cohort followed through),
/// so each stage may be larger or smaller than the one before.
#[endpoint(
    tags("insights"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503)
)]
pub async fn funnel(
    range: RangeQuery,
    depot: &mut Depot,
) -> ApiResult<CachedJson<Envelope<Funnel>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let spec = range_spec(&range)?;
    st.reads
        .answer(
            s.client_id,
            ReadQuery::Funnel(spec),
            funnel_of(&st, s.client_id, spec),
        )
        .await
}

async fn funnel_of(
    st: &AppState,
    client_id: ClientId,
    spec: RangeSpec,
) -> AppResult<Computed<Funnel>> {
    let (r, day_ends) = days_of(st, client_id, spec).await?;
    let f = stats::funnel(&st.db, &st.ch, client_id, r).await?;
    Ok(Computed {
        data: Funnel {
            range: Range {
                start_date: r.start.to_string(),
                end_date: r.end.to_string(),
            },
            vouchers_issued: f.vouchers_issued,
            registered: f.registered,
            active: f.active,
            billable: f.billable,
        },
        day_ends,
    })
}
