//! App-facing API keys: created (plaintext shown once), listed, revoked; authenticated through a
//! moka cache so a known key costs no database query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;
use serde::Serialize;
use sqlx::PgPool;

use crate::domain::auth::{random_secret, sha256, API_KEY_PREFIX};
use crate::domain::ids::{ApiKeyId, ClientId};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub client_id: ClientId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created. `Debug` leaves the key out (it is serialised once, for its owner).
#[derive(Clone, Serialize)]
pub struct CreatedKey {
    pub id: ApiKeyId,
    pub client_id: ClientId,
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
    pub key_id: ApiKeyId,
    pub client_id: ClientId,
}

pub async fn create(pool: &PgPool, client_id: ClientId, name: &str) -> AppResult<CreatedKey> {
    create_audited(pool, client_id, name, None).await
}

/// [`create`], recording `audit` (its target set to the new key) in the same transaction.
pub async fn create_audited(
    pool: &PgPool,
    client_id: ClientId,
    name: &str,
    audit: Option<crate::pg::audit::Entry>,
) -> AppResult<CreatedKey> {
    let key = random_secret(API_KEY_PREFIX);
    let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 8).collect();
    let id = ApiKeyId::new_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO api_keys (id, client_id, name, prefix, key_hash) VALUES ($1, $2, $3, $4, $5)",
        id as ApiKeyId,
        client_id as ClientId,
        name,
        &prefix,
        &sha256(key.as_bytes())[..],
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Unprocessable { .. } => AppError::not_found("client"),
        other => other,
    })?;
    if let Some(entry) = audit {
        let entry = entry
            .target("api_key", id)
            .details(serde_json::json!({ "name": name, "prefix": prefix }));
        crate::pg::audit::record(&mut *tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(CreatedKey {
        id,
        client_id,
        prefix,
        key,
    })
}

/// One key of the client (never the key itself).
pub async fn get(pool: &PgPool, client_id: ClientId, id: ApiKeyId) -> AppResult<ApiKey> {
    sqlx::query_as!(
        ApiKey,
        r#"SELECT id AS "id: ApiKeyId", client_id AS "client_id: ClientId", name, prefix,
                  created_at, last_used_at, revoked_at
           FROM api_keys WHERE client_id = $1 AND id = $2"#,
        client_id as ClientId,
        id as ApiKeyId,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("api key"))
}

pub async fn list(pool: &PgPool, client_id: ClientId) -> AppResult<Vec<ApiKey>> {
    Ok(sqlx::query_as!(
        ApiKey,
        r#"SELECT id AS "id: ApiKeyId", client_id AS "client_id: ClientId", name, prefix,
                  created_at, last_used_at, revoked_at
           FROM api_keys WHERE client_id = $1 ORDER BY created_at DESC"#,
        client_id as ClientId,
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes a key of the client (another client's key id answers 404, like an unknown one).
/// Idempotent: a revoked key keeps its first revocation time, and `audit` is recorded (in the
/// same transaction, target set to the key) only by the revocation that takes effect. Returns the
/// key and the SHA-256 of its secret, so caches can drop it at once.
pub async fn revoke_for(
    pool: &PgPool,
    client_id: ClientId,
    id: ApiKeyId,
    audit: Option<crate::pg::audit::Entry>,
) -> AppResult<(ApiKey, [u8; 32])> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query!(
        r#"WITH old AS (
               SELECT id, revoked_at FROM api_keys WHERE client_id = $1 AND id = $2 FOR UPDATE
           )
           UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, now())
           FROM old WHERE k.id = old.id
           RETURNING k.id AS "id: ApiKeyId", k.client_id AS "client_id: ClientId", k.name,
                     k.prefix, k.created_at, k.last_used_at, k.revoked_at, k.key_hash,
                     old.revoked_at IS NULL AS "newly!""#,
        client_id as ClientId,
        id as ApiKeyId,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| AppError::not_found("api key"))?;
    let key = ApiKey {
        id: row.id,
        client_id: row.client_id,
        name: row.name,
        prefix: row.prefix,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    };
    if let (true, Some(entry)) = (row.newly, audit) {
        let entry = entry
            .target("api_key", id)
            .details(serde_json::json!({ "name": key.name, "prefix": key.prefix }));
        crate::pg::audit::record(&mut *tx, &entry).await?;
    }
    tx.commit().await?;
    let hash: [u8; 32] = row
        .key_hash
        .try_into()
        .map_err(|_| AppError::internal("bad key hash length"))?;
    Ok((key, hash))
}

/// Redis channel on which revocations are announced to every API instance.
pub fn revocation_channel(namespace: &str) -> String {
    format!("{namespace}:api-keys:revoked")
}

/// How many unknown keys are remembered at most, and for how long: enough to spare Postgres a
/// client that repeats one bad key, too small to matter against random keys (those cost one
/// indexed read each and nothing else).
pub const UNKNOWN_KEYS_CAPACITY: u64 = 10_000;
pub const UNKNOWN_KEYS_TTL: Duration = Duration::from_secs(5);
/// Known keys cached at most (every active key of every client fits).
pub const KNOWN_KEYS_CAPACITY: u64 = 100_000;

/// Why a cache load found no principal.
enum Miss {
    Unknown,
    Failed(Arc<AppError>),
}

/// Two caches in front of Postgres: known keys (hash → principal, `API_KEY_CACHE_TTL_SECS`) and,
/// separately, a small negative cache of unknown or revoked keys. Unknown keys never enter the
/// known-key cache, so no number of them can evict a valid key, and looking one up writes nothing.
#[derive(Clone)]
pub struct ApiKeyCache {
    known: Cache<[u8; 32], KeyPrincipal>,
    unknown: Cache<[u8; 32], ()>,
    db_lookups: Arc<AtomicU64>,
}

impl ApiKeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, KNOWN_KEYS_CAPACITY, UNKNOWN_KEYS_CAPACITY)
    }

    /// Explicit capacities (tests shrink them to show that the caches do not share room).
    pub fn with_capacity(ttl: Duration, known: u64, unknown: u64) -> Self {
        Self {
            known: Cache::builder()
                .max_capacity(known)
                .time_to_live(ttl)
                .build(),
            unknown: Cache::builder()
                .max_capacity(unknown)
                .time_to_live(ttl.min(UNKNOWN_KEYS_TTL))
                .build(),
            db_lookups: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many times this cache had to ask Postgres.
    pub fn db_lookups(&self) -> u64 {
        self.db_lookups.load(Ordering::Relaxed)
    }

    /// Whether `key` is in the known-key cache (answered without Postgres).
    pub fn is_cached(&self, key: &str) -> bool {
        self.known.contains_key(&sha256(key.as_bytes()))
    }

    /// Entries of the known-key and of the unknown-key cache, after pending evictions ran.
    pub async fn entry_counts(&self) -> (u64, u64) {
        self.known.run_pending_tasks().await;
        self.unknown.run_pending_tasks().await;
        (self.known.entry_count(), self.unknown.entry_count())
    }

    pub async fn invalidate(&self, hash: &[u8; 32]) {
        self.known.invalidate(hash).await;
    }

    pub fn invalidate_all(&self) {
        self.known.invalidate_all();
        self.unknown.invalidate_all();
    }

    /// Resolves a presented key. Unknown and revoked keys are 401.
    pub async fn authenticate(&self, pool: &PgPool, key: &str) -> AppResult<KeyPrincipal> {
        let refused = || AppError::unauthorized("X-API-Key is not a valid key");
        if key.len() > 256 || !key.starts_with(API_KEY_PREFIX) {
            return Err(refused());
        }
        let hash = sha256(key.as_bytes());
        if let Some(found) = self.known.get(&hash).await {
            return Ok(found);
        }
        if self.unknown.contains_key(&hash) {
            return Err(refused());
        }
        let lookups = self.db_lookups.clone();
        // Concurrent requests with the same key share one lookup; only a found key is cached here.
        let loaded = self
            .known
            .try_get_with(hash, async move {
                lookups.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("portal_api_key_lookups_total").increment(1);
                match crate::pg::unscoped::api_key_by_hash(pool, &hash).await {
                    Ok(Some(found)) => Ok(found),
                    Ok(None) => Err(Miss::Unknown),
                    Err(e) => Err(Miss::Failed(Arc::new(e))),
                }
            })
            .await;
        match loaded {
            Ok(found) => Ok(found),
            Err(miss) => match &*miss {
                Miss::Unknown => {
                    self.unknown.insert(hash, ()).await;
                    Err(refused())
                }
                // Outages and time limits keep their 503; anything else is a 500.
                Miss::Failed(e) => Err(AppError::from(e.clone())),
            },
        }
    }
}
