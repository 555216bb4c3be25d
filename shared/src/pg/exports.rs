//! Export job rows: created under a per-client limit, listed, and moved through
//! `queued` → `running` → `completed` | `failed` by the worker ([`crate::jobs::exports`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgPool;

use crate::domain::ids::{ClientId, ExportJobId, StaffId};
use crate::domain::month::Month;
use crate::domain::pagination::Page;
use crate::domain::status::VoucherStatus;
use crate::error::{AppError, AppResult};

/// What an export holds (the job's `kind` column); with its parameters it is an [`ExportSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ExportKind {
    Members,
    Vouchers,
    Billing,
}

impl ExportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportKind::Members => "members",
            ExportKind::Vouchers => "vouchers",
            ExportKind::Billing => "billing",
        }
    }
}

/// An export with its parameters, stored as the job's `kind` and `params` columns and read back
/// by [`ExportRow::spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportSpec {
    Members,
    /// The client's vouchers, all of them or those of one status.
    Vouchers {
        status: Option<VoucherStatus>,
    },
    /// The month's billable members.
    Billing {
        month: Month,
    },
}

impl ExportSpec {
    pub fn kind(self) -> ExportKind {
        match self {
            ExportSpec::Members => ExportKind::Members,
            ExportSpec::Vouchers { .. } => ExportKind::Vouchers,
            ExportSpec::Billing { .. } => ExportKind::Billing,
        }
    }

    /// The `params` column: `{}`, `{"status": …}` or `{"month": …, "year": …}`.
    pub fn params(self) -> Value {
        match self {
            ExportSpec::Members => serde_json::json!({}),
            ExportSpec::Vouchers { status } => serde_json::json!({ "status": status }),
            ExportSpec::Billing { month } => {
                serde_json::json!({ "month": month.month, "year": month.year })
            }
        }
    }

    /// Reads a stored job's kind and parameters; a row the product did not write is refused
    /// (422 `BAD_EXPORT`), not guessed at.
    pub fn decode(kind: ExportKind, params: &Value) -> AppResult<Self> {
        let bad = |message: &str| AppError::Unprocessable {
            code: "BAD_EXPORT",
            message: message.to_string(),
        };
        Ok(match kind {
            ExportKind::Members => ExportSpec::Members,
            ExportKind::Vouchers => ExportSpec::Vouchers {
                status: match params.get("status") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        serde_json::from_value(v.clone())
                            .map_err(|_| bad("a voucher export's status is unreadable"))?,
                    ),
                },
            },
            ExportKind::Billing => {
                let month = params
                    .get("month")
                    .and_then(Value::as_u64)
                    .filter(|m| (1..=12).contains(m));
                let year = params
                    .get("year")
                    .and_then(Value::as_i64)
                    .filter(|y| (2000..=2100).contains(y));
                match (month, year) {
                    (Some(month), Some(year)) => ExportSpec::Billing {
                        month: Month {
                            year: year as i32,
                            month: month as u32,
                        },
                    },
                    _ => return Err(bad("a billing export needs a month and a year")),
                }
            }
        })
    }
}

/// Where an export job is: `queued` → `running` → `completed` or `failed` (a completed file
/// expires after [`RETENTION_HOURS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ExportStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl ExportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Completed => "completed",
            ExportStatus::Failed => "failed",
        }
    }
}

/// An export job's row; kind and status are decoded when it is read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    pub id: ExportJobId,
    pub client_id: ClientId,
    pub kind: ExportKind,
    pub params: Json<Value>,
    pub status: ExportStatus,
    pub rows_written: i64,
    pub rows_total: Option<i64>,
    pub file_name: String,
    pub storage_key: Option<String>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ExportRow {
    /// What this job exports, with its parameters.
    pub fn spec(&self) -> AppResult<ExportSpec> {
        ExportSpec::decode(self.kind, &self.params.0)
    }
}

/// A client may have at most this many exports queued or running at once.
pub const MAX_ACTIVE_PER_CLIENT: i64 = 3;
/// What a client over that limit is told to wait before asking again, in seconds.
pub const RETRY_AFTER_SECS: u64 = 30;
/// First key of the advisory lock that serialises one client's export requests.
const CREATE_LOCK: i32 = 0x6578_7074;

/// Writes a queued job, unless the client already has [`MAX_ACTIVE_PER_CLIENT`] queued or running
/// (429). The count and the insert run under a per-client lock, so parallel requests cannot pass
/// the limit together.
pub async fn create(
    pool: &PgPool,
    client_id: ClientId,
    staff_id: StaffId,
    spec: ExportSpec,
    file_name: &str,
) -> AppResult<ExportRow> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
        CREATE_LOCK,
        client_id as ClientId,
    )
    .execute(&mut *tx)
    .await?;
    let active = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM export_jobs
           WHERE client_id = $1 AND status IN ('queued', 'running')"#,
        client_id as ClientId,
    )
    .fetch_one(&mut *tx)
    .await?;
    if active >= MAX_ACTIVE_PER_CLIENT {
        return Err(AppError::RateLimited {
            retry_after: RETRY_AFTER_SECS,
            message: format!(
                "{active} exports are queued or running (at most {MAX_ACTIVE_PER_CLIENT}); \
                 start another once one has finished"
            ),
        });
    }
    let row = sqlx::query_as!(
        ExportRow,
        r#"INSERT INTO export_jobs (id, client_id, kind, params, file_name, created_by)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id AS "id: ExportJobId", client_id AS "client_id: ClientId",
                     kind AS "kind: ExportKind", params AS "params: Json<Value>",
                     status AS "status: ExportStatus", rows_written, rows_total, file_name,
                     storage_key, error, attempts, created_at, completed_at, expires_at"#,
        ExportJobId::new_v7() as ExportJobId,
        client_id as ClientId,
        spec.kind() as ExportKind,
        Json(spec.params()) as _,
        file_name,
        staff_id as StaffId,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Runs of the client's export `id` so far (each run counts itself as it starts); 0 for a deleted
/// job.
pub async fn attempts(pool: &PgPool, client_id: ClientId, id: ExportJobId) -> AppResult<usize> {
    let n = sqlx::query_scalar!(
        "SELECT attempts FROM export_jobs WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as ExportJobId,
    )
    .fetch_optional(pool)
    .await?;
    Ok(n.unwrap_or(0).max(0) as usize)
}

pub async fn get(pool: &PgPool, client_id: ClientId, id: ExportJobId) -> AppResult<ExportRow> {
    sqlx::query_as!(
        ExportRow,
        r#"SELECT id AS "id: ExportJobId", client_id AS "client_id: ClientId",
                     kind AS "kind: ExportKind", params AS "params: Json<Value>",
                     status AS "status: ExportStatus", rows_written, rows_total, file_name,
                     storage_key, error, attempts, created_at, completed_at, expires_at
           FROM export_jobs WHERE client_id = $1 AND id = $2"#,
        client_id as ClientId,
        id as ExportJobId,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("export"))
}

pub async fn list(
    pool: &PgPool,
    client_id: ClientId,
    page: Page,
) -> AppResult<(Vec<ExportRow>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM export_jobs WHERE client_id = $1"#,
        client_id as ClientId,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as!(
        ExportRow,
        r#"SELECT id AS "id: ExportJobId", client_id AS "client_id: ClientId",
                     kind AS "kind: ExportKind", params AS "params: Json<Value>",
                     status AS "status: ExportStatus", rows_written, rows_total, file_name,
                     storage_key, error, attempts, created_at, completed_at, expires_at
           FROM export_jobs WHERE client_id = $1
           ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"#,
        client_id as ClientId,
        page.limit_i64(),
        page.offset(),
    )
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// Marks the client's job `id` running (counting the attempt, starting its file over) and returns
/// it; `None` when it no longer exists or has finished.
pub async fn start(
    pool: &PgPool,
    client_id: ClientId,
    id: ExportJobId,
) -> AppResult<Option<ExportRow>> {
    Ok(sqlx::query_as!(
        ExportRow,
        r#"UPDATE export_jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
                  rows_written = 0, error = NULL
           WHERE client_id = $1 AND id = $2 AND status IN ('queued', 'running')
           RETURNING id AS "id: ExportJobId", client_id AS "client_id: ClientId",
                     kind AS "kind: ExportKind", params AS "params: Json<Value>",
                     status AS "status: ExportStatus", rows_written, rows_total, file_name,
                     storage_key, error, attempts, created_at, completed_at, expires_at"#,
        client_id as ClientId,
        id as ExportJobId,
    )
    .fetch_optional(pool)
    .await?)
}

/// Marks the client's job `id` completed with `written` rows in the file at `key`, downloadable
/// for `retention_hours`.
pub async fn complete(
    pool: &PgPool,
    client_id: ClientId,
    id: ExportJobId,
    written: u64,
    key: &str,
    retention_hours: i64,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE export_jobs SET status = 'completed', rows_written = $2, rows_total = $2,
                storage_key = $3, completed_at = now(), expires_at = now() + make_interval(hours => $4)
         WHERE client_id = $5 AND id = $1",
        id as ExportJobId,
        written as i64,
        key,
        retention_hours as i32,
        client_id as ClientId,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Rows written so far into the client's job `id`.
pub async fn progress(
    db: &PgPool,
    client_id: ClientId,
    id: ExportJobId,
    written: u64,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE export_jobs SET rows_written = $3 WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as ExportJobId,
        written as i64,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a permanent failure of the client's job `id`.
pub async fn fail(db: &PgPool, client_id: ClientId, id: ExportJobId, error: &str) -> AppResult<()> {
    sqlx::query!(
        "UPDATE export_jobs SET status = 'failed', error = $2, completed_at = now()
         WHERE client_id = $3 AND id = $1",
        id as ExportJobId,
        error.chars().take(500).collect::<String>(),
        client_id as ClientId,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// How many rows the client's job `id` will hold.
pub async fn set_total(
    db: &PgPool,
    client_id: ClientId,
    id: ExportJobId,
    total: i64,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE export_jobs SET rows_total = $3 WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as ExportJobId,
        total,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Expired exports whose file is still stored (at most 10,000 at a time): `(id, storage key)`.
/// A sweep over every client (listed in [`unscoped`](crate::pg::unscoped)), like the two below.
pub async fn expired_files(pool: &PgPool) -> AppResult<Vec<(ExportJobId, String)>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: ExportJobId", storage_key AS "storage_key!" FROM export_jobs
           WHERE expires_at < now() AND storage_key IS NOT NULL LIMIT 10000"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.storage_key)).collect())
}

/// Records that the file of export `id` is deleted (an operator's sweep over every client).
pub async fn forget_file(pool: &PgPool, id: ExportJobId) -> AppResult<()> {
    sqlx::query!(
        "UPDATE export_jobs SET storage_key = NULL WHERE id = $1",
        id as ExportJobId,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes export rows older than 8 days whose file is gone; returns how many.
pub async fn delete_old(pool: &PgPool) -> AppResult<u64> {
    Ok(sqlx::query!(
        "DELETE FROM export_jobs WHERE created_at < now() - interval '8 days' AND storage_key IS NULL",
    )
    .execute(pool)
    .await?
    .rows_affected())
}
