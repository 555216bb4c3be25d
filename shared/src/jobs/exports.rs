//! Asynchronous CSV exports: job rows in Postgres, ids on the apalis queue, files in [`Storage`].
//! CSV is RFC 4180 with a header row (the `csv` crate), UTF-8, timestamps in ISO 8601 with the
//! partner's offset, and cells that a spreadsheet would run as a formula neutralised with `'`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::ch::billing::{self, Month};
use crate::ch::ClickHouse;
use crate::domain::pagination::Page;
use crate::error::{AppError, AppResult};
use crate::pg::{clients, members, vouchers};
use crate::storage::Storage;

pub const EXPORTS_QUEUE: &str = "exports";
/// Files can be downloaded for 24 hours.
pub const RETENTION_HOURS: i64 = 24;
/// Rows between progress updates.
const PROGRESS_EVERY: u64 = 1000;
/// Bytes buffered before a part is handed to the store.
const PART_BYTES: usize = 1 << 20;
/// Billing export rows whose figures are fetched from ClickHouse at once.
const BILLING_CHUNK: usize = 1000;

/// The job on the queue: only the id; the worker reloads the row.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportJob {
    pub job_id: Uuid,
}

/// What an export holds. Its parameters (a voucher status, a billing month) are in the job's
/// `params` and read by the kind's builder.
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
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub kind: ExportKind,
    pub params: sqlx::types::Json<serde_json::Value>,
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

const COLUMNS: &str =
    "id, client_id, kind, params, status, rows_written, rows_total, file_name, storage_key,
    error, attempts, created_at, completed_at, expires_at";

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
    client_id: Uuid,
    staff_id: Uuid,
    kind: ExportKind,
    params: serde_json::Value,
    file_name: &str,
) -> AppResult<ExportRow> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(CREATE_LOCK)
        .bind(client_id)
        .execute(&mut *tx)
        .await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM export_jobs WHERE client_id = $1 AND status IN ('queued', 'running')",
    )
    .bind(client_id)
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
    let row = sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "INSERT INTO export_jobs (id, client_id, kind, params, file_name, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(client_id)
    .bind(kind)
    .bind(sqlx::types::Json(params))
    .bind(file_name)
    .bind(staff_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Runs of the client's export `id` so far (each run counts itself as it starts); 0 for a deleted
/// job.
pub async fn attempts(pool: &PgPool, client_id: Uuid, id: Uuid) -> AppResult<usize> {
    let n: Option<i32> =
        sqlx::query_scalar("SELECT attempts FROM export_jobs WHERE client_id = $1 AND id = $2")
            .bind(client_id)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(n.unwrap_or(0).max(0) as usize)
}

pub async fn get(pool: &PgPool, client_id: Uuid, id: Uuid) -> AppResult<ExportRow> {
    sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM export_jobs WHERE client_id = $1 AND id = $2"
    )))
    .bind(client_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("export"))
}

pub async fn list(pool: &PgPool, client_id: Uuid, page: Page) -> AppResult<(Vec<ExportRow>, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM export_jobs WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM export_jobs WHERE client_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    )))
    .bind(client_id)
    .bind(page.limit_i64())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

/// A spreadsheet runs cells that start with `= + - @`, tab or carriage return as formulas:
/// such cells are prefixed with `'`.
pub fn safe_cell(s: &str) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

fn ts(t: Option<DateTime<Utc>>, tz: chrono_tz::Tz) -> String {
    t.map(|t| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    })
    .unwrap_or_default()
}

/// Streams CSV records into a multipart upload, a part at a time, so memory stays flat, and
/// reports the job's progress every [`PROGRESS_EVERY`] rows.
struct CsvSink {
    buf: csv::Writer<Vec<u8>>,
    upload: WriteMultipart,
    db: PgPool,
    client_id: Uuid,
    job_id: Uuid,
    /// Data rows written (the header is not counted).
    rows: u64,
}

impl CsvSink {
    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new().from_writer(Vec::with_capacity(PART_BYTES + 4096))
    }

    fn new(upload: WriteMultipart, db: &PgPool, client_id: Uuid, job_id: Uuid) -> Self {
        Self {
            buf: Self::writer(),
            upload,
            db: db.clone(),
            client_id,
            job_id,
            rows: 0,
        }
    }

    /// One data row.
    async fn row<I, T>(&mut self, fields: I) -> AppResult<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.record(fields).await?;
        self.rows += 1;
        if self.rows.is_multiple_of(PROGRESS_EVERY) {
            progress(&self.db, self.client_id, self.job_id, self.rows).await?;
        }
        Ok(())
    }

    /// A record that is not counted (the header).
    async fn record<I, T>(&mut self, fields: I) -> AppResult<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        for f in fields {
            self.buf
                .write_field(safe_cell(f.as_ref()).as_ref())
                .map_err(AppError::internal)?;
        }
        self.buf
            .write_record(None::<&[u8]>)
            .map_err(AppError::internal)?;
        if self.buf.get_ref().len() >= PART_BYTES {
            self.flush_part().await?;
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> AppResult<()> {
        let full = std::mem::replace(&mut self.buf, Self::writer());
        let bytes = full.into_inner().map_err(AppError::internal)?;
        self.upload
            .wait_for_capacity(2)
            .await
            .map_err(|e| AppError::internal(format!("storage: {e}")))?;
        self.upload.write(&bytes);
        Ok(())
    }

    async fn abort(self) {
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(error = %e, "could not abort an export upload");
        }
    }

    async fn finish(mut self) -> AppResult<()> {
        if let Err(e) = self.flush_part().await {
            self.abort().await;
            return Err(e);
        }
        self.upload
            .finish()
            .await
            .map_err(|e| AppError::internal(format!("storage: {e}")))?;
        Ok(())
    }
}

/// Context a worker needs to build an export.
pub struct ExportCtx<'a> {
    pub db: &'a PgPool,
    pub ch: &'a ClickHouse,
    pub storage: &'a Storage,
}

async fn progress(db: &PgPool, client_id: Uuid, id: Uuid, written: u64) -> AppResult<()> {
    sqlx::query("UPDATE export_jobs SET rows_written = $3 WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(id)
        .bind(written as i64)
        .execute(db)
        .await?;
    Ok(())
}

/// Builds the file of the client's job `id`. Idempotent: a completed job is left alone; a retried
/// one starts its file over. Returns `Ok(false)` when the job no longer exists.
pub async fn run(ctx: &ExportCtx<'_>, client_id: Uuid, id: Uuid) -> AppResult<bool> {
    // The column list is a constant of this module.
    let row: Option<ExportRow> = sqlx::query_as::<_, ExportRow>(sqlx::AssertSqlSafe(format!(
        "UPDATE export_jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
                rows_written = 0, error = NULL
         WHERE client_id = $1 AND id = $2 AND status IN ('queued', 'running') RETURNING {COLUMNS}"
    )))
    .bind(client_id)
    .bind(id)
    .fetch_optional(ctx.db)
    .await?;
    let Some(job) = row else {
        return Ok(false);
    };
    let tz = clients::timezone(ctx.db, job.client_id).await?;
    let key = ctx.storage.key(job.client_id, job.id);
    let upload = ctx
        .storage
        .store
        .put_multipart(&Storage::path(&key))
        .await
        .map_err(|e| AppError::internal(format!("storage: {e}")))?;
    let mut sink = CsvSink::new(
        WriteMultipart::new_with_chunk_size(upload, 5 * PART_BYTES),
        ctx.db,
        job.client_id,
        job.id,
    );
    let built = match job.kind {
        ExportKind::Members => members_csv(ctx, &job, tz, &mut sink).await,
        ExportKind::Vouchers => vouchers_csv(ctx, &job, tz, &mut sink).await,
        ExportKind::Billing => billing_csv(ctx, &job, tz, &mut sink).await,
    };
    if let Err(e) = built {
        // Leave no half-written object (or unfinished S3 multipart upload) behind.
        sink.abort().await;
        return Err(e);
    }
    let written = sink.rows;
    sink.finish().await?;
    sqlx::query(
        "UPDATE export_jobs SET status = 'completed', rows_written = $2, rows_total = $2,
                storage_key = $3, completed_at = now(), expires_at = now() + make_interval(hours => $4)
         WHERE client_id = $5 AND id = $1",
    )
    .bind(job.id)
    .bind(written as i64)
    .bind(&key)
    .bind(RETENTION_HOURS as i32)
    .bind(job.client_id)
    .execute(ctx.db)
    .await?;
    Ok(true)
}

/// Records a permanent failure of the client's job `id`.
pub async fn fail(db: &PgPool, client_id: Uuid, id: Uuid, error: &str) -> AppResult<()> {
    sqlx::query(
        "UPDATE export_jobs SET status = 'failed', error = $2, completed_at = now()
         WHERE client_id = $3 AND id = $1",
    )
    .bind(id)
    .bind(error.chars().take(500).collect::<String>())
    .bind(client_id)
    .execute(db)
    .await?;
    Ok(())
}

async fn set_total(db: &PgPool, client_id: Uuid, id: Uuid, total: i64) -> AppResult<()> {
    sqlx::query("UPDATE export_jobs SET rows_total = $3 WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(id)
        .bind(total)
        .execute(db)
        .await?;
    Ok(())
}

async fn members_csv(
    ctx: &ExportCtx<'_>,
    job: &ExportRow,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM members WHERE client_id = $1")
        .bind(job.client_id)
        .fetch_one(ctx.db)
        .await?;
    set_total(ctx.db, job.client_id, job.id, total).await?;
    let since = members::active_since(tz, Utc::now());
    sink.record([
        "id",
        "name",
        "email",
        "status",
        "voucherCode",
        "registeredAt",
        "firstActiveAt",
        "lastActiveAt",
        "totalWatchTimeMinutes",
        "classesWatched",
        "activeDays",
        "favoriteCategory",
    ])
    .await?;
    let mut rows = sqlx::query_as::<_, members::MemberRow>(sqlx::AssertSqlSafe(format!(
        "{} WHERE m.client_id = $1 ORDER BY m.registered_at, m.id",
        members::SELECT
    )))
    .bind(job.client_id)
    .fetch(ctx.db);
    while let Some(m) = rows.try_next().await? {
        let s = m.summary(since);
        sink.row([
            m.id.to_string(),
            m.name.clone(),
            m.email.clone(),
            s.status.to_string(),
            m.voucher_code.clone().unwrap_or_default(),
            ts(Some(m.registered_at), tz),
            ts(m.first_active_at, tz),
            ts(m.last_active_at, tz),
            s.total_watch_time_minutes.to_string(),
            m.class_views.to_string(),
            m.active_days.to_string(),
            m.favorite_category.clone().unwrap_or_default(),
        ])
        .await?;
    }
    Ok(())
}

async fn vouchers_csv(
    ctx: &ExportCtx<'_>,
    job: &ExportRow,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let status = job
        .params
        .0
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_string);
    let filter = format!(
        "WHERE v.client_id = $1 AND ($2::text IS NULL OR ({}) = $2)",
        vouchers::STATUS_SQL
    );
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM vouchers v {filter}"
    )))
    .bind(job.client_id)
    .bind(&status)
    .fetch_one(ctx.db)
    .await?;
    set_total(ctx.db, job.client_id, job.id, total).await?;
    sink.record([
        "id",
        "code",
        "status",
        "batchId",
        "expiresAt",
        "createdAt",
        "redeemedAt",
        "redeemedByName",
        "redeemedByEmail",
        "revokedAt",
    ])
    .await?;
    let mut rows = sqlx::query_as::<_, vouchers::Voucher>(sqlx::AssertSqlSafe(format!(
        "{} {filter} ORDER BY v.id",
        vouchers::SELECT
    )))
    .bind(job.client_id)
    .bind(&status)
    .fetch(ctx.db);
    while let Some(v) = rows.try_next().await? {
        sink.row([
            v.id.to_string(),
            v.code.clone(),
            v.status.clone(),
            v.batch_id.to_string(),
            ts(v.expires_at, tz),
            ts(Some(v.created_at), tz),
            ts(v.redeemed_at, tz),
            v.redeemed_by_name.clone().unwrap_or_default(),
            v.redeemed_by_email.clone().unwrap_or_default(),
            ts(v.revoked_at, tz),
        ])
        .await?;
    }
    Ok(())
}

async fn billing_csv(
    ctx: &ExportCtx<'_>,
    job: &ExportRow,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let month = Month::from_params(&job.params.0).ok_or_else(|| AppError::Unprocessable {
        code: "BAD_EXPORT",
        message: "a billing export needs a month and a year".into(),
    })?;
    let ids = billing::billable_ids(ctx.ch, job.client_id, month).await?;
    set_total(
        ctx.db,
        job.client_id,
        job.id,
        crate::pg::billing::count(ctx.db, job.client_id, &ids).await?,
    )
    .await?;
    sink.record([
        "id",
        "name",
        "email",
        "registeredAt",
        "watchTimeMinutes",
        "classesWatched",
        "firstActiveAt",
        "lastActiveAt",
    ])
    .await?;
    // Members in report order, their figures fetched a chunk at a time.
    let mut people = std::pin::pin!(crate::pg::billing::people(ctx.db, job.client_id, &ids));
    let mut chunk = Vec::with_capacity(BILLING_CHUNK);
    loop {
        let next = people.try_next().await?;
        let done = next.is_none();
        chunk.extend(next);
        if chunk.len() < BILLING_CHUNK && !done {
            continue;
        }
        let part = std::mem::replace(&mut chunk, Vec::with_capacity(BILLING_CHUNK));
        for m in billing::with_figures(ctx.ch, job.client_id, month, part).await? {
            sink.row([
                m.id.to_string(),
                m.name,
                m.email,
                ts(Some(m.registered_at), tz),
                m.watch_time_minutes.to_string(),
                m.classes_watched.to_string(),
                ts(Some(m.first_active_at), tz),
                ts(Some(m.last_active_at), tz),
            ])
            .await?;
        }
        if done {
            return Ok(());
        }
    }
}

/// Deletes files of expired exports (rows stay 7 days more so downloads answer 410, not 404),
/// then old rows. Returns (files deleted, rows deleted).
pub async fn cleanup(db: &PgPool, storage: &Storage) -> AppResult<(u64, u64)> {
    let expired: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, storage_key FROM export_jobs WHERE expires_at < now() AND storage_key IS NOT NULL LIMIT 10000",
    )
    .fetch_all(db)
    .await?;
    let mut files = 0;
    for (id, key) in expired {
        match storage.store.delete(&Storage::path(&key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, %key, "could not delete an expired export");
                continue;
            }
        }
        sqlx::query("UPDATE export_jobs SET storage_key = NULL WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
        files += 1;
    }
    let abandoned = storage
        .sweep_abandoned(std::time::Duration::from_secs(24 * 3600))
        .await;
    if abandoned > 0 {
        tracing::info!(
            files = abandoned,
            "removed partial export files of interrupted uploads"
        );
    }
    let rows = sqlx::query(
        "DELETE FROM export_jobs WHERE created_at < now() - interval '8 days' AND storage_key IS NULL",
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok((files, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for s in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert!(safe_cell(s).starts_with('\''), "{s}");
        }
        assert_eq!(safe_cell("Ann"), "Ann");
        assert_eq!(safe_cell(""), "");
    }
}
