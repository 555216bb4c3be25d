//! `GET /partner/audit-log` (admin): who did what, when.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use portal_shared::error::AppError;
use portal_shared::pg::{audit, clients};
use salvo::oapi::extract::QueryParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{staff, state};
use crate::params::Paging;

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<audit::AuditRow>,
    pub pagination: PaginationDoc,
}

/// A `from`/`to` value: a date (client's timezone; `to` is inclusive) or an RFC 3339 instant.
fn bound(
    raw: Option<&str>,
    field: &str,
    tz: chrono_tz::Tz,
    end: bool,
) -> Result<Option<DateTime<Utc>>, AppError> {
    let Some(s) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| AppError::validation(field, "must be YYYY-MM-DD or an RFC 3339 timestamp"))?;
    let d = if end { d.succ_opt().unwrap_or(d) } else { d };
    Ok(tz
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .map(|t| t.with_timezone(&Utc)))
}

/// The client's audit log, newest first; filter by `action` and a `from`/`to` range (`from` not
/// after `to`). Admins only.
#[endpoint(
    tags("audit"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 403, 503),
    parameters(
        ("action" = Option<String>, Query, max_length = 64, pattern = "^[^\\u0000]*$", description = "e.g. auth.login"),
        ("from" = Option<crate::doc::DayOrInstant>, Query),
        ("to" = Option<crate::doc::DayOrInstant>, Query, description = "Inclusive"),
    )
)]
pub async fn list(
    action: QueryParam<String, false>,
    from: QueryParam<String, false>,
    to: QueryParam<String, false>,
    paging: Paging<100>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<AuditList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let p = paging.0;
    let tz = clients::timezone(&st.db, s.client_id).await?;
    let from = bound(from.as_deref(), "from", tz, false)?;
    let to = bound(to.as_deref(), "to", tz, true)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(AppError::validation("from", "must not be after to").into());
        }
    }
    let action = crate::params::text(action.as_deref(), "action", Some(64))?;
    let (rows, total) = audit::list(&st.db, s.client_id, action.as_deref(), from, to, p).await?;
    Ok(ok(AuditList {
        entries: rows,
        pagination: p.pagination(total).into(),
    }))
}
