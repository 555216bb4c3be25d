//! App-facing API keys: created (plaintext shown once), listed, revoked; authenticated through a
//! moka cache so a known key costs no database query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::auth::{random_secret, sha256, API_KEY_PREFIX};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: Uuid,
    pub client_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created. `Debug` leaves the key out (it is serialised once, for its owner).
#[derive(Clone, Serialize)]
pub struct CreatedKey {
    pub id: Uuid,
    pub client_id: Uuid,
    pub prefix: String,
    /// The plaintext key: returned once, never stored.
    pub key: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("prefix", &self.prefix)
            .field("key", &crate::config::REDACTED)
            .finish()
    }
}

/// Who an authenticated key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPrincipal {
    pub key_id: Uuid,
    pub client_id: Uuid,
}

const SELECT: &str =
    "SELECT id, client_id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys";

pub async fn create(pool: &PgPool, client_id: Uuid, name: &str) -> AppResult<CreatedKey> {
    let key = random_secret(API_KEY_PREFIX);
    let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 8).collect();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO api_keys (id, client_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(client_id)
    .bind(name)
    .bind(&prefix)
    .bind(&sha256(key.as_bytes())[..])
    .execute(pool)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Unprocessable { .. } => AppError::not_found("client"),
        other => other,
    })?;
    Ok(CreatedKey {
        id,
        client_id,
        prefix,
        key,
    })
}

pub async fn list(pool: &PgPool, client_id: Uuid) -> AppResult<Vec<ApiKey>> {
    Ok(sqlx::query_as::<_, ApiKey>(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE client_id = $1 ORDER BY created_at DESC"
    )))
    .bind(client_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes a key (idempotent: revoking a revoked key keeps its first revocation time).
/// Returns the key and the SHA-256 of its secret, so caches can drop it at once.
pub async fn revoke(pool: &PgPool, id: Uuid) -> AppResult<(ApiKey, [u8; 32])> {
    #[derive(FromRow)]
    struct Revoked {
        #[sqlx(flatten)]
        key: ApiKey,
        key_hash: Vec<u8>,
    }
    let row: Option<Revoked> = sqlx::query_as(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
         RETURNING id, client_id, name, prefix, created_at, last_used_at, revoked_at, key_hash",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let row = row.ok_or_else(|| AppError::not_found("api key"))?;
    let hash: [u8; 32] = row
        .key_hash
        .try_into()
        .map_err(|_| AppError::internal("bad key hash length"))?;
    Ok((row.key, hash))
}

/// Redis channel on which revocations are announced to every API instance.
pub fn revocation_channel(namespace: &str) -> String {
    format!("{namespace}:api-keys:revoked")
}

/// Cache of key hash → principal (or `None` for unknown/revoked keys), with a short time to live.
#[derive(Clone)]
pub struct ApiKeyCache {
    cache: Cache<[u8; 32], Option<KeyPrincipal>>,
    db_lookups: Arc<AtomicU64>,
}

impl ApiKeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            db_lookups: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many times this cache had to ask Postgres.
    pub fn db_lookups(&self) -> u64 {
        self.db_lookups.load(Ordering::Relaxed)
    }

    pub async fn invalidate(&self, hash: &[u8; 32]) {
        self.cache.invalidate(hash).await;
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Resolves a presented key. Unknown and revoked keys are 401.
    pub async fn authenticate(&self, pool: &PgPool, key: &str) -> AppResult<KeyPrincipal> {
        if key.len() > 256 || !key.starts_with(API_KEY_PREFIX) {
            return Err(AppError::unauthorized("X-API-Key is not a valid key"));
        }
        let hash = sha256(key.as_bytes());
        let lookups = self.db_lookups.clone();
        let found = self
            .cache
            .try_get_with(hash, async move {
                lookups.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("portal_api_key_lookups_total").increment(1);
                let row: Option<(Uuid, Uuid)> = sqlx::query_as(
                    "UPDATE api_keys SET last_used_at = now()
                     WHERE key_hash = $1 AND revoked_at IS NULL
                     RETURNING id, client_id",
                )
                .bind(&hash[..])
                .fetch_optional(pool)
                .await?;
                Ok::<_, AppError>(row.map(|(key_id, client_id)| KeyPrincipal { key_id, client_id }))
            })
            .await
            .map_err(AppError::from)?;
        found.ok_or_else(|| AppError::unauthorized("X-API-Key is not a valid key"))
    }
}
