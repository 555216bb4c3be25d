//! Asynchronous CSV exports: job rows in Postgres, ids on the apalis queue, files in [`Storage`].
//! CSV is RFC 4180 with a header row (the `csv` crate), UTF-8, timestamps in ISO 8601 with the
//! partner's offset, and cells that a spreadsheet would run as a formula neutralised with `'`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::ch::billing;
use crate::ch::ClickHouse;
use crate::domain::ids::{ClientId, ExportJobId};
use crate::domain::month::Month;
use crate::domain::status::VoucherStatus;
use crate::error::{AppError, AppResult};
use crate::pg::exports::{self, ExportRow, ExportSpec};
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
    pub job_id: ExportJobId,
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
    client_id: ClientId,
    job_id: ExportJobId,
    /// Data rows written (the header is not counted).
    rows: u64,
}

impl CsvSink {
    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new().from_writer(Vec::with_capacity(PART_BYTES + 4096))
    }

    fn new(upload: WriteMultipart, db: &PgPool, client_id: ClientId, job_id: ExportJobId) -> Self {
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
            exports::progress(&self.db, self.client_id, self.job_id, self.rows).await?;
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

/// Builds the file of the client's job `id`. Idempotent: a completed job is left alone; a retried
/// one starts its file over. Returns `Ok(false)` when the job no longer exists.
pub async fn run(ctx: &ExportCtx<'_>, client_id: ClientId, id: ExportJobId) -> AppResult<bool> {
    let row = exports::start(ctx.db, client_id, id).await?;
    let Some(job) = row else {
        return Ok(false);
    };
    let spec = job.spec()?;
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
    let built = match spec {
        ExportSpec::Members => members_csv(ctx, &job, tz, &mut sink).await,
        ExportSpec::Vouchers { status } => vouchers_csv(ctx, &job, status, tz, &mut sink).await,
        ExportSpec::Billing { month } => billing_csv(ctx, &job, month, tz, &mut sink).await,
    };
    if let Err(e) = built {
        // Leave no half-written object (or unfinished S3 multipart upload) behind.
        sink.abort().await;
        return Err(e);
    }
    let written = sink.rows;
    sink.finish().await?;
    exports::complete(
        ctx.db,
        job.client_id,
        job.id,
        written,
        &key,
        RETENTION_HOURS,
    )
    .await?;
    Ok(true)
}

async fn members_csv(
    ctx: &ExportCtx<'_>,
    job: &ExportRow,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let total = members::count(ctx.db, job.client_id).await?;
    exports::set_total(ctx.db, job.client_id, job.id, total).await?;
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
    let mut rows = members::all(ctx.db, job.client_id);
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
    status: Option<VoucherStatus>,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let total = vouchers::count_with_status(ctx.db, job.client_id, status).await?;
    exports::set_total(ctx.db, job.client_id, job.id, total).await?;
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
    let mut rows = vouchers::all_with_status(ctx.db, job.client_id, status);
    while let Some(v) = rows.try_next().await? {
        sink.row([
            v.id.to_string(),
            v.code.clone(),
            v.status.to_string(),
            v.batch_id.to_string(),
            ts(v.expires_at, tz),
            ts(Some(v.created_at), tz),
            ts(v.redeemed_at, tz),
            v.redeemed_by
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            v.redeemed_by
                .as_ref()
                .map(|m| m.email.clone())
                .unwrap_or_default(),
            ts(v.revoked_at, tz),
        ])
        .await?;
    }
    Ok(())
}

async fn billing_csv(
    ctx: &ExportCtx<'_>,
    job: &ExportRow,
    month: Month,
    tz: chrono_tz::Tz,
    sink: &mut CsvSink,
) -> AppResult<()> {
    let ids = billing::billable_ids(ctx.ch, job.client_id, month).await?;
    exports::set_total(
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
    let expired = exports::expired_files(db).await?;
    let mut files = 0;
    for (id, key) in expired {
        match storage.store.delete(&Storage::path(&key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, %key, "could not delete an expired export");
                continue;
            }
        }
        exports::forget_file(db, id).await?;
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
    let rows = exports::delete_old(db).await?;
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
