//! `portal-admin migrate`: Postgres (sqlx, embedded `migrations/`) then ClickHouse (embedded
//! `clickhouse/`). Both are idempotent; a second run applies nothing.

use portal_shared::{ch, pg};
use serde_json::json;

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::Outcome;

pub async fn run(ctx: &Ctx) -> CliResult<Outcome> {
    pg::migrate(&ctx.pool).await.map_err(postgres_error)?;

    let migrations = ch::embedded()
        .map_err(|e| CliError::failed("MIGRATION_FAILED", format!("clickhouse migrations: {e}")))?;
    let mut clickhouse = ch::ClickHouse::from_config(&ctx.config);
    let version = clickhouse.detect_version().await.map_err(|e| {
        CliError::failed(
            "SERVICE_UNAVAILABLE",
            format!("clickhouse (CLICKHOUSE_URL) did not answer: {e}"),
        )
    })?;
    let applied = ch::migrate(&clickhouse, &ctx.pool, &migrations)
        .await
        .map_err(|e| CliError::failed("MIGRATION_FAILED", e.to_string()))?;

    let pg_known = pg::MIGRATOR.iter().count();
    let mut text = format!("postgres: up to date ({pg_known} migration(s))\n");
    text.push_str(&format!(
        "clickhouse {version}, database {}: ",
        clickhouse.database
    ));
    if applied.is_empty() {
        text.push_str(&format!(
            "up to date ({} migration(s)), nothing applied",
            migrations.len()
        ));
    } else {
        let names: Vec<String> = migrations
            .iter()
            .filter(|m| applied.contains(&m.version))
            .map(|m| format!("{:04}_{}", m.version, m.name))
            .collect();
        text.push_str(&format!("applied {}", names.join(", ")));
    }
    Ok(Outcome::new(
        json!({ "postgres": "ok", "clickhouseApplied": applied }),
        text,
    ))
}

fn postgres_error(e: sqlx::migrate::MigrateError) -> CliError {
    let unreachable = matches!(
        &e,
        sqlx::migrate::MigrateError::Execute(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))
    );
    if unreachable {
        CliError::failed(
            "SERVICE_UNAVAILABLE",
            format!("postgres (DATABASE_URL) is not reachable: {e}"),
        )
    } else {
        CliError::failed(
            "MIGRATION_FAILED",
            format!("postgres migrations failed: {e}"),
        )
    }
}
