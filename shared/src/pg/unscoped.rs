//! The lookups that take no client id, all in one place. Each of them is how the client is found
//! in the first place (a login email, an API key, a refresh token, a job the worker picked up) or
//! an operator's act across clients (`portal-admin`); every other function of the repository
//! takes the caller's client id and keeps to that client's rows.
//!
//! The all-client sweeps: housekeeping deletes expired rows of every client by design, and those
//! statements stay with the table they keep (they read no row out to a caller):
//! - [`sessions::prune`](crate::pg::sessions::prune) — refresh tokens expired for over 7 days;
//! - [`idempotency::prune`](crate::pg::idempotency::prune) — stored answers older than 24 hours;
//! - [`receipts::prune`](crate::pg::receipts::prune) — watch-event receipts and landed batches
//!   older than 35 days;
//! - [`exports::expired_files`](crate::pg::exports::expired_files),
//!   [`exports::forget_file`](crate::pg::exports::forget_file) and
//!   [`exports::delete_old`](crate::pg::exports::delete_old) — expired export files and old job
//!   rows.

use sqlx::PgPool;

use sqlx::{Postgres, Transaction};

use crate::domain::ids::{ApiKeyId, ClientId, ExportJobId, FamilyId, MemberId, StaffId};

use crate::domain::auth::Role;
use crate::error::{AppError, AppResult};
use crate::pg::api_keys::{ApiKey, KeyPrincipal};
use crate::pg::sessions::{self, Subject};
use crate::pg::staff::StaffRow;

/// Staff login: emails are unique platform-wide.
pub async fn staff_for_login(pool: &PgPool, email: &str) -> AppResult<Option<StaffRow>> {
    Ok(sqlx::query_as!(
        StaffRow,
        r#"SELECT id AS "id: StaffId", client_id AS "client_id: ClientId", email, name,
                  password_hash, role AS "role: Role", active, created_at, last_login_at
           FROM staff WHERE email = $1"#,
        email,
    )
    .fetch_optional(pool)
    .await?)
}

/// A staff member by id: the holder of a verified access token (whose client the caller then
/// compares with the token's), or `portal-admin` acting across clients.
pub async fn staff_by_id(pool: &PgPool, id: StaffId) -> AppResult<Option<StaffRow>> {
    Ok(sqlx::query_as!(
        StaffRow,
        r#"SELECT id AS "id: StaffId", client_id AS "client_id: ClientId", email, name,
                  password_hash, role AS "role: Role", active, created_at, last_login_at
           FROM staff WHERE id = $1"#,
        id as StaffId,
    )
    .fetch_optional(pool)
    .await?)
}

/// An active API key by the hash of its secret. Only a found key is written to (its
/// `last_used_at`, at most once a minute); an unknown one costs one indexed read.
pub async fn api_key_by_hash(pool: &PgPool, hash: &[u8; 32]) -> AppResult<Option<KeyPrincipal>> {
    let row = sqlx::query!(
        r#"SELECT id AS "id: ApiKeyId", client_id AS "client_id: ClientId"
           FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"#,
        &hash[..],
    )
    .fetch_optional(pool)
    .await?;
    let Some((key_id, client_id)) = row.map(|r| (r.id, r.client_id)) else {
        return Ok(None);
    };
    sqlx::query!(
        "UPDATE api_keys SET last_used_at = now()
         WHERE client_id = $1 AND id = $2
           AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        client_id as ClientId,
        key_id as ApiKeyId,
    )
    .execute(pool)
    .await?;
    Ok(Some(KeyPrincipal { key_id, client_id }))
}

/// Revokes any client's key (`portal-admin api-key revoke`; partners use
/// `api_keys::revoke_for`, which takes their client). Idempotent: a revoked key keeps its first
/// revocation time. Returns the key and the SHA-256 of its secret, so caches can drop it at once.
pub async fn revoke_api_key(pool: &PgPool, id: ApiKeyId) -> AppResult<(ApiKey, [u8; 32])> {
    let row = sqlx::query!(
        r#"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
           RETURNING id AS "id: ApiKeyId", client_id AS "client_id: ClientId", name, prefix,
                     created_at, last_used_at, revoked_at, key_hash"#,
        id as ApiKeyId,
    )
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or_else(|| AppError::not_found("api key"))?;
    let hash: [u8; 32] = row
        .key_hash
        .try_into()
        .map_err(|_| AppError::internal("bad key hash length"))?;
    let key = ApiKey {
        id: row.id,
        client_id: row.client_id,
        name: row.name,
        prefix: row.prefix,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    };
    Ok((key, hash))
}

/// The client of export job `id` (all the worker's queue payload carries) while it still is to be
/// built (queued, or running after an interrupted attempt); `None` once it is completed, failed or
/// gone. The worker then works on it through the client-scoped `exports` functions.
pub async fn pending_export_client(pool: &PgPool, id: ExportJobId) -> AppResult<Option<ClientId>> {
    Ok(sqlx::query_scalar!(
        r#"SELECT client_id AS "client_id: ClientId" FROM export_jobs
           WHERE id = $1 AND status IN ('queued', 'running')"#,
        id as ExportJobId,
    )
    .fetch_optional(pool)
    .await?)
}

/// A refresh token found by the hash of its secret: its family and client (which every further
/// statement on it is scoped by), its subject and its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshToken {
    pub family_id: FamilyId,
    pub client_id: ClientId,
    pub staff_id: Option<StaffId>,
    pub member_id: Option<MemberId>,
    pub used: bool,
    pub revoked: bool,
    pub expired: bool,
}

impl RefreshToken {
    /// Whose session the token is (`None` for a row with neither or both subjects).
    pub fn subject(&self) -> Option<Subject> {
        match (self.staff_id, self.member_id) {
            (Some(id), None) => Some(Subject::Staff(id)),
            (None, Some(id)) => Some(Subject::Member(id)),
            _ => None,
        }
    }
}

/// The refresh token whose secret hashes to `token_hash`, read after taking its family's lock
/// for the rest of `tx` (rotation and logout hold it; see `sessions`); `None` when there is none.
pub async fn refresh_token_by_hash(
    tx: &mut Transaction<'static, Postgres>,
    token_hash: &[u8; 32],
) -> AppResult<Option<RefreshToken>> {
    let family = sqlx::query_scalar!(
        r#"SELECT family_id AS "family_id: FamilyId" FROM refresh_tokens WHERE token_hash = $1"#,
        &token_hash[..],
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(family) = family else {
        return Ok(None);
    };
    sessions::lock_family(tx, family).await?;
    Ok(sqlx::query_as!(
        RefreshToken,
        r#"SELECT family_id AS "family_id: FamilyId", client_id AS "client_id: ClientId",
                  staff_id AS "staff_id: StaffId", member_id AS "member_id: MemberId",
                  used_at IS NOT NULL AS "used!", revoked_at IS NOT NULL AS "revoked!",
                  expires_at <= now() AS "expired!"
           FROM refresh_tokens WHERE token_hash = $1"#,
        &token_hash[..],
    )
    .fetch_optional(&mut **tx)
    .await?)
}

/// The seen-events filter's backfill ([`crate::seen::SeenFilter::backfill`]): receipts of every
/// client younger than 35 days, `limit` at a time in key order after `after`. Only event ids leave
/// the ledger, and only as bits of the filter.
pub async fn receipts_page(
    pool: &PgPool,
    after: Option<(ClientId, uuid::Uuid)>,
    limit: i64,
) -> AppResult<Vec<(ClientId, uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
    let (client, event) = after.unwrap_or((ClientId(uuid::Uuid::nil()), uuid::Uuid::nil()));
    // Planned for the ledger's current size, so always a walk of its primary key.
    let mut tx = pool.begin().await?;
    crate::pg::custom_plans(&mut tx).await?;
    let rows = sqlx::query!(
        r#"SELECT client_id AS "client_id: ClientId", event_id, received_at
           FROM watch_event_receipts
           WHERE (client_id, event_id) > ($1, $2)
             AND received_at >= now() - interval '35 days'
           ORDER BY client_id, event_id
           LIMIT $3"#,
        client as ClientId,
        event,
        limit,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.client_id, r.event_id, r.received_at))
        .collect())
}
