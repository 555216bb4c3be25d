//! Asynchronous exports: `GET /partner/{vouchers,members,billing}/export` answer 202 with a job;
//! `GET /partner/exports/{jobId}` polls it; `…/download` streams the CSV.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use portal_shared::domain::month::Month;
use portal_shared::error::AppError;
use portal_shared::jobs::exports::ExportJob;
use portal_shared::pg::exports::{self, ExportRow, ExportSpec, ExportStatus as JobStatus};
use portal_shared::pg::{audit, clients, vouchers};
use portal_shared::storage::Storage;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{client_ip, request_id, staff, state, Staff};
use crate::params::Paging;
use portal_shared::domain::ids::{ClientId, ExportJobId};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub job_id: ExportJobId,
    /// `vouchers | members | billing`.
    pub kind: String,
    /// Always `queued`.
    pub status: String,
    pub status_url: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportStatus {
    pub job_id: ExportJobId,
    pub kind: String,
    /// `queued | running | completed | failed`.
    pub status: String,
    pub rows_written: i64,
    pub rows_total: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once completed (until expiry).
    pub download_url: Option<String>,
    pub error: Option<String>,
    pub file_name: String,
}

fn status_of(r: ExportRow) -> ExportStatus {
    let expired = r.expires_at.is_some_and(|e| e <= Utc::now());
    ExportStatus {
        download_url: (r.status == JobStatus::Completed && !expired)
            .then(|| format!("/partner/exports/{}/download", r.id)),
        job_id: r.id,
        kind: r.kind.as_str().to_string(),
        status: r.status.as_str().to_string(),
        rows_written: r.rows_written,
        rows_total: r.rows_total,
        created_at: r.created_at,
        completed_at: r.completed_at,
        expires_at: r.expires_at,
        error: r.error,
        file_name: r.file_name,
    }
}

/// Writes the job row (429 when the client has 3 queued or running), then enqueues its id (after
/// commit). If Redis is down the job is marked failed and the caller gets 503. The file is named
/// `file_name`, or `{kind}-{today}.csv` (the partner's today).
async fn start(
    depot: &Depot,
    req: &Request,
    res: &mut Response,
    s: Staff,
    spec: ExportSpec,
    file_name: Option<String>,
) -> ApiResult<Json<Envelope<Queued>>> {
    let st = state(depot).clone();
    let file_name = match file_name {
        Some(name) => name,
        None => format!(
            "{}-{}.csv",
            spec.kind().as_str(),
            today(depot, s.client_id).await?
        ),
    };
    let row = exports::create(&st.db, s.client_id, s.staff_id, spec, &file_name).await?;
    if let Err(e) = st.exports.enqueue(ExportJob { job_id: row.id }).await {
        exports::fail(
            &st.db,
            s.client_id,
            row.id,
            "the job queue was unreachable; start the export again",
        )
        .await?;
        return Err(e.into());
    }
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ExportsCreate,
    )
    .target("export", row.id)
    .details(serde_json::json!({ "kind": spec.kind(), "params": spec.params() }))
    .origin(client_ip(req), request_id(depot));
    audit::record(&st.db, &entry).await?;
    let status_url = format!("/partner/exports/{}", row.id);
    res.status_code(StatusCode::ACCEPTED);
    res.add_header("location", &status_url, true).ok();
    Ok(ok(Queued {
        job_id: row.id,
        kind: spec.kind().as_str().to_string(),
        status: "queued".into(),
        status_url,
    }))
}

async fn today(depot: &Depot, client_id: ClientId) -> ApiResult<chrono::NaiveDate> {
    let st = state(depot).clone();
    Ok(clients::today(clients::timezone(&st.db, client_id).await?))
}

/// Export vouchers as CSV (optional `status` filter). Answers 202 with a job to poll; 429 with
/// `Retry-After` while the client has 3 exports queued or running.
#[endpoint(
    tags("exports"),
    security(("bearer" = [], "api_key" = [])),
    status_codes(202, 400, 401, 403, 429, 503),
    responses((status_code = 202, description = "Export queued", body = Envelope<Queued>)),
    parameters(("status" = Option<crate::doc::VoucherStatus>, Query))
)]
pub async fn vouchers_export(
    status: QueryParam<String, false>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<Queued>>> {
    let s = staff(depot)?;
    let status = vouchers::parse_status(status.as_deref())?;
    start(depot, req, res, s, ExportSpec::Vouchers { status }, None).await
}

/// Export all members with activity data as CSV. Answers 202 with a job to poll; 429 with
/// `Retry-After` while the client has 3 exports queued or running.
#[endpoint(
    tags("exports"),
    security(("bearer" = [])),
    status_codes(202, 401, 429, 503),
    responses((status_code = 202, description = "Export queued", body = Envelope<Queued>))
)]
pub async fn members_export(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<Queued>>> {
    let s = staff(depot)?;
    start(depot, req, res, s, ExportSpec::Members, None).await
}

/// Export a month's billing report as CSV (`month`, `year`; default the current month). 429 with
/// `Retry-After` while the client has 3 exports queued or running.
#[endpoint(
    tags("exports"),
    security(("bearer" = [])),
    status_codes(202, 400, 401, 429, 503),
    responses((status_code = 202, description = "Export queued", body = Envelope<Queued>)),
    parameters(
        ("month" = Option<u32>, Query, minimum = 1, maximum = 12, description = "1 to 12; with `year`, not after the current month"),
        ("year" = Option<i32>, Query, minimum = 2000, maximum = 2100),
    )
)]
pub async fn billing_export(
    month: QueryParam<String, false>,
    year: QueryParam<String, false>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<Queued>>> {
    let s = staff(depot)?;
    let day = today(depot, s.client_id).await?;
    let m = Month::parse(month.as_deref(), year.as_deref(), day)?;
    let name = format!("billing-{}-{:02}.csv", m.year, m.month);
    start(
        depot,
        req,
        res,
        s,
        ExportSpec::Billing { month: m },
        Some(name),
    )
    .await
}

fn job_id(raw: &str) -> Result<ExportJobId, AppError> {
    crate::params::path_id(raw, "export")
}

/// Poll an export job.
#[endpoint(
    tags("exports"),
    security(("bearer" = [])),
    status_codes(200, 401, 404, 503),
    parameters(("jobId" = Uuid, Path))
)]
pub async fn job_status(
    #[allow(non_snake_case)] jobId: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ExportStatus>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(status_of(
        exports::get(&st.db, s.client_id, job_id(&jobId)?).await?,
    )))
}

#[derive(Serialize, ToSchema)]
pub struct ExportList {
    pub exports: Vec<ExportStatus>,
    pub pagination: PaginationDoc,
}

/// The client's recent exports, newest first.
#[endpoint(
    tags("exports"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 503),
    parameters(
    )
)]
pub async fn list(paging: Paging<100>, depot: &mut Depot) -> ApiResult<Json<Envelope<ExportList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let p = paging.0;
    let (rows, total) = exports::list(&st.db, s.client_id, p).await?;
    Ok(ok(ExportList {
        exports: rows.into_iter().map(status_of).collect(),
        pagination: p.pagination(total).into(),
    }))
}

/// Download a completed export (streamed `text/csv`). 409 until it is completed, 410 once expired.
#[endpoint(
    tags("exports"),
    security(("bearer" = [])),
    status_codes(200, 401, 404, 409, 410, 503),
    responses(
        (status_code = 200, description = "The CSV file", body = String, content_type = "text/csv; charset=utf-8"),
        (status_code = 409, description = "The export is not completed yet (EXPORT_NOT_READY)", body = crate::error::ErrorEnvelope),
        (status_code = 410, description = "The export has expired (GONE)", body = crate::error::ErrorEnvelope),
    ),
    parameters(("jobId" = Uuid, Path))
)]
pub async fn download(
    #[allow(non_snake_case)] jobId: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let job = exports::get(&st.db, s.client_id, job_id(&jobId)?).await?;
    if job.status != JobStatus::Completed {
        return Err(AppError::conflict(
            "EXPORT_NOT_READY",
            format!(
                "the export is {}; poll its status until it is completed",
                job.status.as_str()
            ),
        )
        .into());
    }
    let expired = job.expires_at.is_none_or(|e| e <= Utc::now());
    let Some(key) = job.storage_key.filter(|_| !expired) else {
        return Err(AppError::Gone("the export has expired; start a new one".into()).into());
    };
    let file = st
        .storage
        .store
        .get(&Storage::path(&key))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                AppError::Gone("the export file is gone; start a new one".into())
            }
            other => AppError::internal(format!("storage: {other}")),
        })?;
    res.add_header("content-type", "text/csv; charset=utf-8", true)
        .ok();
    res.add_header(
        "content-disposition",
        format!(
            "attachment; filename=\"{}\"",
            job.file_name.replace('"', "")
        ),
        true,
    )
    .ok();
    res.add_header("content-length", file.meta.size.to_string(), true)
        .ok();
    res.stream(file.into_stream().map(|r| r.map_err(std::io::Error::other)));
    Ok(())
}
