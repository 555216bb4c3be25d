//! `GET /partner/members`, `GET /partner/members/{id}` (partner JWT).

use chrono::{DateTime, Utc};
use portal_shared::domain::pagination::{Page, Sort};
use portal_shared::error::AppError;
use portal_shared::pg::members::MemberSummary;
use portal_shared::pg::{clients, members};
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{staff, state};
use crate::params::{FromQuery, Paging, Query, QueryReader, Reported};
use crate::reads::{day_end, CachedJson, Computed, ReadQuery};
use crate::state::AppState;
use portal_shared::domain::ids::{ClientId, MemberId};

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberSummary>,
    pub pagination: PaginationDoc,
}

/// The query of `GET /partner/members`.
pub struct MemberQuery {
    filter: members::ListFilter,
    sort: Sort,
    page: Page,
}

impl FromQuery for MemberQuery {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported> {
        let search = q.parse("search", crate::params::search);
        let status = q.parse("status", members::parse_status);
        let sort = q.parse("sort", members::parse_sort);
        let page = q.page(100);
        Ok(Self {
            filter: members::ListFilter {
                search: search?,
                status: status?,
            },
            sort: sort?,
            page: page?,
        })
    }

    fn document(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation) {
        <Paging<100> as salvo::oapi::EndpointArgRegister>::register(c, op, "");
    }
}

/// List members: `search` (name or email), `status` (active, inactive), `sort` by name, email,
/// registeredAt (default, newest first), lastActiveAt, watchTime (prefix `-` for descending).
#[endpoint(
    tags("members"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
        ("search" = Option<String>, Query, max_length = 100, pattern = "^[^\\u0000]*$", description = "Part of the name or email"),
        ("status" = Option<crate::doc::MemberStatus>, Query),
        ("sort" = Option<crate::doc::MemberSort>, Query),
    )
)]
pub async fn list(
    query: Query<MemberQuery>,
    depot: &mut Depot,
) -> ApiResult<CachedJson<Envelope<MemberList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let MemberQuery { filter, sort, page } = query.0;
    let read = ReadQuery::Members {
        filter: filter.clone(),
        sort,
        page,
    };
    st.reads
        .answer(
            s.client_id,
            read,
            list_of(&st, s.client_id, filter, sort, page),
        )
        .await
}

async fn list_of(
    st: &AppState,
    client_id: ClientId,
    filter: members::ListFilter,
    sort: Sort,
    page: Page,
) -> Result<Computed<MemberList>, AppError> {
    let tz = clients::timezone(&st.db, client_id).await?;
    let now = Utc::now();
    let since = members::active_since(tz, now);
    let (rows, total) = members::list(&st.db, client_id, since, &filter, sort, page).await?;
    Ok(Computed {
        data: MemberList {
            members: rows.iter().map(|m| m.summary(since)).collect(),
            pagination: page.pagination(total).into(),
        },
        day_ends: day_end(tz, now),
    })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStats {
    pub total_watch_time_minutes: i64,
    pub classes_watched: i64,
    /// Days with at least one class view (client's timezone).
    pub active_days: i64,
    /// Category with the most watch time, or null before the first view.
    pub favorite_category: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub class_id: String,
    pub title: String,
    pub category: String,
    pub watched_at: DateTime<Utc>,
    pub watched_minutes: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberDetail {
    #[serde(flatten)]
    pub member: MemberSummary,
    pub first_active_at: Option<DateTime<Utc>>,
    pub stats: MemberStats,
    /// Newest first; paginated with `historyPage` / `historyLimit`.
    pub viewing_history: Vec<HistoryEntry>,
    pub history_pagination: PaginationDoc,
}

/// One member with aggregate statistics and viewing history.
#[endpoint(
    tags("members"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 404, 503),
    parameters(
        ("id" = Uuid, Path),
        ("historyPage" = Option<u32>, Query, minimum = 1, maximum = 4194303),
        ("historyLimit" = Option<u32>, Query, minimum = 1, maximum = 100),
    )
)]
pub async fn detail(
    id: PathParam<String>,
    #[allow(non_snake_case)] historyPage: QueryParam<String, false>,
    #[allow(non_snake_case)] historyLimit: QueryParam<String, false>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<MemberDetail>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let hp = Page::parse(historyPage.as_deref(), historyLimit.as_deref(), 100).map_err(|_| {
        AppError::validation(
            "historyPage/historyLimit",
            "historyPage ≥ 1 and historyLimit 1 to 100",
        )
    })?;
    let id = crate::params::path_id(&id, "member")?;
    let m = members::get(&st.db, s.client_id, id).await?;
    let tz = clients::timezone(&st.db, s.client_id).await?;
    let since = members::active_since(tz, Utc::now());
    let summary = m.summary(since);
    let (history, total) = viewing_history(&st, s.client_id, m.id, hp).await?;
    Ok(ok(MemberDetail {
        stats: MemberStats {
            total_watch_time_minutes: summary.total_watch_time_minutes,
            classes_watched: summary.classes_watched,
            active_days: i64::from(m.active_days),
            favorite_category: m.favorite_category.clone(),
        },
        first_active_at: m.first_active_at,
        member: summary,
        viewing_history: history,
        history_pagination: hp.pagination(total).into(),
    }))
}

/// The member's class views, newest first (from ClickHouse).
async fn viewing_history(
    st: &crate::state::AppState,
    client_id: ClientId,
    member_id: MemberId,
    page: Page,
) -> ApiResult<(Vec<HistoryEntry>, i64)> {
    let (rows, total) = portal_shared::ch::analytics::member_history(
        &st.ch,
        client_id,
        member_id,
        page.limit_i64(),
        page.offset(),
    )
    .await?;
    let catalogue = st.catalogue.get(&st.db).await?;
    Ok((
        rows.into_iter()
            .map(|r| HistoryEntry {
                title: catalogue
                    .get(&r.class_id)
                    .map(|c| c.title.clone())
                    .unwrap_or_else(|| r.class_id.clone()),
                class_id: r.class_id,
                category: r.category,
                watched_at: r.started_at,
                watched_minutes: portal_shared::domain::minutes(i64::from(r.watched_seconds)),
            })
            .collect(),
        total,
    ))
}
