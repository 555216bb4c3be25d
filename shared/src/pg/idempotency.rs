//! `Idempotency-Key` for retried writes: the first answer is stored with a hash of the request; a
//! retry with the same key and body gets that answer again and changes nothing; the same key with
//! a different body is refused (422). Records are kept 24 hours (housekeeping deletes them).

use serde_json::Value;
use sqlx::{Postgres, Transaction};

use crate::domain::auth::sha256;
use crate::domain::ids::ClientId;
use crate::error::{AppError, AppResult};

pub fn validate_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(AppError::validation(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(())
}

pub fn request_hash(body: &Value) -> [u8; 32] {
    sha256(body.to_string().as_bytes())
}

/// Takes the key's lock for this transaction and returns the stored answer, if any.
pub async fn lookup(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    scope: &str,
    key: &str,
    hash: &[u8; 32],
) -> AppResult<Option<(u16, Value)>> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        format!("{client_id}:{scope}:{key}"),
    )
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query!(
        "SELECT request_hash, status_code, response FROM idempotency_keys
         WHERE client_id = $1 AND scope = $2 AND key = $3",
        client_id as ClientId,
        scope,
        key,
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| (r.request_hash, r.status_code, r.response));
    match row {
        None => Ok(None),
        Some((stored, status, response)) if stored.as_slice() == hash => {
            Ok(Some((status as u16, response)))
        }
        Some(_) => Err(AppError::Unprocessable {
            code: "IDEMPOTENCY_KEY_REUSED",
            message: "this Idempotency-Key was used with a different request".into(),
        }),
    }
}

pub async fn store(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    scope: &str,
    key: &str,
    hash: &[u8; 32],
    status: u16,
    response: &Value,
) -> AppResult<()> {
    sqlx::query!(
        "INSERT INTO idempotency_keys (client_id, scope, key, request_hash, status_code, response)
         VALUES ($1, $2, $3, $4, $5, $6)",
        client_id as ClientId,
        scope,
        key,
        &hash[..],
        status as i16,
        response,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stored answers are kept 24 hours. A sweep over every client (listed in
/// [`unscoped`](crate::pg::unscoped)).
pub async fn prune(pool: &sqlx::PgPool) -> AppResult<u64> {
    Ok(
        sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
