//! The Postgres layer: the pool, the migrations (embedded from `migrations/`) and one module of
//! queries per resource. Every SQL statement against Postgres lives under this folder. Queries on
//! a tenant-owned row take the client id first; the few that cannot (finding the client in the
//! first place) live together in [`unscoped`].

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod classes;
pub mod clients;
pub mod exports;
pub mod idempotency;
pub mod members;
pub mod products;
pub mod receipts;
pub mod sessions;
pub mod staff;
pub mod strings;
pub mod unscoped;
pub mod vouchers;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::Config;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Key of the advisory lock that serialises ClickHouse migrations across processes.
pub const CLICKHOUSE_MIGRATION_LOCK: i64 = 0x5041_5254_4e45_5201;

pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let opts: PgConnectOptions = url.parse()?;
    Ok(opts.application_name("partner-portal"))
}

/// A lazily connecting pool: the process starts even when Postgres is briefly away, and every
/// query fails fast (3 s) with a 503 instead of hanging. Must be called inside a Tokio runtime.
pub fn pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    let opts = connect_options(config.database_url.expose())?;
    Ok(pool_with(opts, config.database_max_connections))
}

/// The API's pool: like [`pool`], and every statement is limited to
/// `DATABASE_STATEMENT_TIMEOUT_MS` (Postgres `statement_timeout`, set per connection), so a slow
/// read — or one stuck behind a lock — is cancelled by the server and answers 503 instead of
/// holding a connection. Migrations and the worker use [`pool`], without a limit.
pub fn api_pool(config: &Config) -> Result<PgPool, sqlx::Error> {
    let opts = connect_options(config.database_url.expose())?.options([(
        "statement_timeout",
        config.database_statement_timeout.as_millis(),
    )]);
    Ok(pool_with(opts, config.database_max_connections))
}

pub fn pool_with(opts: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Duration::from_secs(300))
        .connect_lazy_with(opts)
}

/// Makes Postgres plan every statement of the transaction for its parameters (custom plans)
/// instead of reusing a prepared statement's generic plan: for statements whose best plan
/// depends on a table's current size (see `receipts`).
pub async fn custom_plans(tx: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(tx)
        .await
        .map(drop)
}

/// One round trip to Postgres (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(pool)
        .await
        .map(|_| ())
}

/// Applies pending Postgres migrations (sqlx takes its own advisory lock, so concurrent starts are
/// safe).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Retries `migrate` while Postgres is unreachable, up to `patience`.
pub async fn migrate_with_retry(pool: &PgPool, patience: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match migrate(pool).await {
            Ok(()) => return Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(e))
                if matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!(error = %e, "postgres not reachable yet; retrying migrations");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("postgres migrations failed: {e}")),
        }
    }
}

/// Takes the session-level advisory lock `key` on this connection, waiting for it.
pub async fn advisory_lock(conn: &mut sqlx::PgConnection, key: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_lock($1)", key)
        .execute(conn)
        .await
        .map(drop)
}

/// Releases the advisory lock `key` taken by [`advisory_lock`] on this connection.
pub async fn advisory_unlock(conn: &mut sqlx::PgConnection, key: i64) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", key)
        .fetch_one(conn)
        .await
        .map(drop)
}

/// Escapes `%`, `_` and `\` for use inside `ILIKE '%…%'`.
pub fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_pattern("a%b_c"), "%a\\%b\\_c%");
    }
    use chrono::Utc;
    use uuid::Uuid;

    use crate::domain::ids::{ApiKeyId, ClientId, FamilyId, MemberId, StaffId};

    /// Rows that carry a password hash, a key or a token print without it.
    #[test]
    fn rows_carrying_secrets_redact_them_in_debug() {
        const SECRET: &str = "$argon2id$v=19$SECRET-VALUE";
        let staff = super::staff::StaffRow {
            id: StaffId(Uuid::nil()),
            client_id: ClientId(Uuid::nil()),
            email: "a@b.example".into(),
            name: "A".into(),
            password_hash: SECRET.into(),
            role: crate::domain::auth::Role::Admin,
            active: true,
            created_at: Utc::now(),
            last_login_at: None,
        };
        let member = super::members::LoginRow {
            member: super::members::MemberRow {
                id: MemberId(Uuid::nil()),
                client_id: ClientId(Uuid::nil()),
                email: "m@b.example".into(),
                name: "M".into(),
                registered_at: Utc::now(),
                voucher_code: None,
                first_active_at: None,
                last_active_at: None,
                watch_seconds: 0,
                class_views: 0,
                active_days: 0,
                favorite_category: None,
            },
            password_hash: SECRET.into(),
        };
        let rotated = super::sessions::Rotated {
            client_id: ClientId(Uuid::nil()),
            subject: super::sessions::Subject::Staff(StaffId(Uuid::nil())),
            family_id: FamilyId(Uuid::nil()),
            refresh_token: SECRET.into(),
        };
        let key = super::api_keys::CreatedKey {
            id: ApiKeyId(Uuid::nil()),
            client_id: ClientId(Uuid::nil()),
            prefix: "ppk_abcd".into(),
            key: SECRET.into(),
        };
        for shown in [
            format!("{staff:?}"),
            format!("{member:?}"),
            format!("{rotated:?}"),
            format!("{key:?}"),
        ] {
            assert!(!shown.contains("SECRET-VALUE"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(format!("{staff:?}").contains("a@b.example"));
    }
}
