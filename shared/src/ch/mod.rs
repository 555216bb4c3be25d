//! ClickHouse: client construction (with server-version detection) and the migrations runner for
//! `clickhouse/NNNN_name.sql`. Runs against 18.16 and current servers alike.
//!
//! The official crate validates row types against the server schema by sending settings that old
//! servers reject, so validation is turned on only for servers that understand it (23.x and newer).

pub mod analytics;
pub mod billing;
pub mod cluster;
pub mod events;

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::{is_identifier, Config};

/// Migrations embedded at build time: `(file stem, sql)`.
pub const EMBEDDED_MIGRATIONS: &[(&str, &str)] =
    include!(concat!(env!("OUT_DIR"), "/clickhouse_migrations.rs"));

/// The table where applied ClickHouse migrations are recorded, and its columns.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";
const MIGRATIONS_COLUMNS: &str =
    "version UInt32, name String, checksum String, applied_at DateTime";

#[derive(Clone)]
pub struct ClickHouse {
    pub client: clickhouse::Client,
    pub database: String,
    /// `CLICKHOUSE_CLUSTER`: the tables are replicated and distributed over this cluster.
    pub cluster: Option<String>,
    base: clickhouse::Client,
}

impl ClickHouse {
    /// Builds a client for `database`. Does not contact the server; see [`ClickHouse::detect_version`].
    pub fn new(url: &str, database: &str, user: &str, password: &str) -> Self {
        let base = clickhouse::Client::default()
            .with_url(url)
            .with_user(user)
            .with_password(password)
            .with_validation(false);
        Self {
            client: base.clone().with_database(database),
            database: database.to_string(),
            cluster: None,
            base,
        }
    }

    pub fn from_config(config: &Config) -> Self {
        let ch = Self::new(
            &config.clickhouse_url,
            &config.clickhouse_database,
            &config.clickhouse_user,
            config.clickhouse_password.expose(),
        );
        match &config.clickhouse_cluster {
            Some(cluster) => ch.on_cluster(cluster, config.clickhouse_insert_quorum),
            None => ch,
        }
    }

    /// Cluster mode: the migrations create replicated local tables and Distributed tables over
    /// `cluster` (see [`cluster`]), and every insert through [`ClickHouse::client`] is
    /// synchronous (`insert_distributed_sync`): when it returns, the rows are on their shard, not
    /// waiting in a Distributed table's queue. With `quorum` ≥ 2 (`insert_quorum`) it returns only
    /// once that many replicas of the shard hold them, so whichever replica a later read reaches
    /// sees them — the resume path's "which events already landed" check included — and with too
    /// few replicas up, inserts fail (and are retried) instead of landing on one copy.
    ///
    /// Reads and inserts both go to the first live replica of each shard (`load_balancing =
    /// in_order`), so a read after an insert sees what the insert's materialized views wrote too
    /// (their target tables replicate without the quorum); after a failover the second replica
    /// may lag in those targets for as long as replication takes.
    pub fn on_cluster(mut self, cluster: &str, quorum: u32) -> Self {
        self.cluster = Some(cluster.to_string());
        self.client = self
            .client
            .with_setting("insert_distributed_sync", "1")
            .with_setting("load_balancing", "in_order");
        if quorum >= 2 {
            // A replica that died without a goodbye counts as live until its ZooKeeper session
            // ends; an insert waiting for it gives up after 30 s (not 10 minutes) and is retried.
            self.client = self
                .client
                .with_setting("insert_quorum", quorum.to_string())
                .with_setting("insert_quorum_timeout", "30000");
        }
        self
    }

    /// Limits every query sent through [`ClickHouse::client`] to `limit` (ClickHouse
    /// `max_execution_time`, whole seconds, at least 1): the server stops a longer query with
    /// TIMEOUT_EXCEEDED, which answers 503. Used by the API; [`ClickHouse::server`] (migrations,
    /// version, readiness) stays unlimited.
    pub fn with_max_execution_time(mut self, limit: Duration) -> Self {
        let secs = limit.as_secs().max(1);
        self.client = self
            .client
            .with_setting("max_execution_time", secs.to_string());
        self
    }

    /// Asks the server its version and enables row validation where the server supports it.
    pub async fn detect_version(&mut self) -> Result<String, clickhouse::error::Error> {
        let version: String = self.base.query("SELECT version()").fetch_one().await?;
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let validate = major >= 23;
        self.client = self.client.clone().with_validation(validate);
        tracing::info!(%version, validation = validate, "clickhouse server");
        if let Some(cluster) = &self.cluster {
            let shards: Vec<u64> = self
                .base
                .query(
                    "SELECT toUInt64(count()) FROM system.clusters WHERE cluster = ? GROUP BY shard_num",
                )
                .bind(cluster.as_str())
                .fetch_all()
                .await?;
            if shards.is_empty() {
                return Err(clickhouse::error::Error::Custom(format!(
                    "CLICKHOUSE_CLUSTER={cluster}: the server has no such cluster in remote_servers"
                )));
            }
            tracing::info!(%cluster, shards = shards.len(), fewest_replicas = shards.iter().min(), "clickhouse cluster");
        }
        Ok(version)
    }

    /// `SELECT 1` with a short timeout, for readiness checks.
    pub async fn ping(&self) -> Result<(), String> {
        let fut = self.base.query("SELECT 1").fetch_one::<u8>();
        match tokio::time::timeout(Duration::from_secs(2), fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".into()),
        }
    }

    /// Client without a default database (for `CREATE DATABASE`).
    pub fn server(&self) -> &clickhouse::Client {
        &self.base
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: String,
    pub sql: String,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("clickhouse migration file {0:?} must be named NNNN_description.sql")]
    BadName(String),
    #[error("clickhouse migration {version} appears twice")]
    Duplicate { version: u32 },
    #[error("clickhouse migration {version} ({name}) was changed after it was applied")]
    Changed { version: u32, name: String },
    #[error("clickhouse database name {0:?} is not a plain identifier")]
    BadDatabase(String),
    #[error("clickhouse migration {version} ({name}) failed: {source}")]
    Statement {
        version: u32,
        name: String,
        source: clickhouse::error::Error,
    },
    #[error("clickhouse migration {version} ({name}) cannot run on a cluster: {why}")]
    NoClusterForm {
        version: u32,
        name: String,
        why: String,
    },
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("postgres (migration lock): {0}")]
    Postgres(#[from] sqlx::Error),
}

/// Parses `(file stem, sql)` pairs into ordered migrations.
pub fn parse_migrations(files: &[(&str, &str)]) -> Result<Vec<Migration>, MigrationError> {
    let mut out: Vec<Migration> = Vec::with_capacity(files.len());
    for (stem, sql) in files {
        let (num, name) = stem
            .split_once('_')
            .ok_or_else(|| MigrationError::BadName(stem.to_string()))?;
        let version: u32 = num
            .parse()
            .map_err(|_| MigrationError::BadName(stem.to_string()))?;
        if out.iter().any(|m| m.version == version) {
            return Err(MigrationError::Duplicate { version });
        }
        out.push(Migration {
            version,
            name: name.to_string(),
            sql: sql.to_string(),
            checksum: hex::encode(Sha256::digest(sql.as_bytes())),
        });
    }
    out.sort_by_key(|m| m.version);
    Ok(out)
}

/// Splits a migration file into statements: `;` ends a statement unless it is inside a quoted
/// string or a `--` comment. Empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' | '`' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Applies pending migrations to the configured database (created if missing) and records each in
/// `schema_migrations`. A Postgres advisory lock makes concurrent starts (api + workers) take turns.
/// Returns the versions applied by this call.
pub async fn migrate(
    ch: &ClickHouse,
    pg: &PgPool,
    migrations: &[Migration],
) -> Result<Vec<u32>, MigrationError> {
    if !is_identifier(&ch.database) {
        return Err(MigrationError::BadDatabase(ch.database.clone()));
    }
    let mut lock_conn = pg.acquire().await?;
    crate::pg::advisory_lock(&mut lock_conn, crate::pg::CLICKHOUSE_MIGRATION_LOCK).await?;
    let result = migrate_locked(ch, migrations).await;
    let unlock =
        crate::pg::advisory_unlock(&mut lock_conn, crate::pg::CLICKHOUSE_MIGRATION_LOCK).await;
    if let Err(e) = unlock {
        tracing::warn!(error = %e, "could not release the clickhouse migration lock; closing the connection");
        lock_conn.close_on_drop();
    }
    result
}

async fn migrate_locked(
    ch: &ClickHouse,
    migrations: &[Migration],
) -> Result<Vec<u32>, MigrationError> {
    let db = &ch.database;
    let on_cluster = ch
        .cluster
        .as_ref()
        .map(|c| format!(" ON CLUSTER {c}"))
        .unwrap_or_default();
    ch.server()
        .query(&format!("CREATE DATABASE IF NOT EXISTS {db}{on_cluster}"))
        .execute()
        .await?;
    let ledger = match &ch.cluster {
        Some(c) => cluster::ledger_table(c, db, MIGRATIONS_TABLE),
        None => format!(
            "CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} ({MIGRATIONS_COLUMNS})
             ENGINE = MergeTree ORDER BY version"
        ),
    };
    ch.server().query(&ledger).execute().await?;
    if ch.cluster.is_some() {
        // This server's copy of the ledger holds every entry another server recorded.
        ch.server()
            .query(&format!("SYSTEM SYNC REPLICA {db}.{MIGRATIONS_TABLE}"))
            .execute()
            .await?;
    }
    let applied: Vec<(u32, String)> = ch
        .server()
        .query(&format!(
            "SELECT version, checksum FROM {db}.{MIGRATIONS_TABLE} ORDER BY version"
        ))
        .fetch_all()
        .await?;
    let mut done = Vec::new();
    for m in migrations {
        if let Some((_, sum)) = applied.iter().find(|(v, _)| *v == m.version) {
            if *sum != m.checksum {
                return Err(MigrationError::Changed {
                    version: m.version,
                    name: m.name.clone(),
                });
            }
            continue;
        }
        for stmt in split_statements(&m.sql) {
            let stmts = match &ch.cluster {
                Some(c) => {
                    cluster::rewrite(&stmt, c, db).map_err(|why| MigrationError::NoClusterForm {
                        version: m.version,
                        name: m.name.clone(),
                        why,
                    })?
                }
                None => vec![stmt],
            };
            for stmt in stmts {
                ch.client.query(&stmt).execute().await.map_err(|source| {
                    MigrationError::Statement {
                        version: m.version,
                        name: m.name.clone(),
                        source,
                    }
                })?;
            }
        }
        ch.server()
            .query(&format!(
                "INSERT INTO {db}.{MIGRATIONS_TABLE} (version, name, checksum, applied_at) VALUES (?, ?, ?, now())"
            ))
            .bind(m.version)
            .bind(&m.name)
            .bind(&m.checksum)
            .execute()
            .await?;
        tracing::info!(version = m.version, name = %m.name, "applied clickhouse migration");
        done.push(m.version);
    }
    Ok(done)
}

/// The embedded migrations, parsed.
pub fn embedded() -> Result<Vec<Migration>, MigrationError> {
    parse_migrations(EMBEDDED_MIGRATIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';');\n\nSELECT 'it''s; fine';  ;";
        let s = split_statements(sql);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].starts_with("CREATE TABLE a"));
        assert!(s[0].contains("';'"));
        assert_eq!(s[1], "SELECT 'it''s; fine'");
    }

    #[test]
    fn migrations_are_ordered_and_names_checked() {
        let m = parse_migrations(&[("0002_b", "SELECT 2"), ("0001_a", "SELECT 1")]).unwrap();
        assert_eq!(m.iter().map(|m| m.version).collect::<Vec<_>>(), vec![1, 2]);
        assert!(parse_migrations(&[("nonumber", "x")]).is_err());
        assert!(parse_migrations(&[("0001_a", "x"), ("0001_b", "y")]).is_err());
        assert!(embedded().is_ok());
    }
}
