//! Job queues (apalis on Redis). Payloads carry ids and parameters only; workers reload state.
//! Every queue lives under `{REDIS_NAMESPACE}:{queue}` so deployments and test runs never share one.

use std::time::Duration;

use apalis_redis::{Config as QueueConfig, RedisStorage};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use sqlx::PgPool;

use crate::error::AppResult;

pub const HOUSEKEEPING_QUEUE: &str = "housekeeping";

pub fn queue_key(namespace: &str, queue: &str) -> String {
    format!("{namespace}:{queue}")
}

/// Redis connections fail fast (≈ 0.5 s) when Redis is away, so callers can answer 503 instead of
/// hanging; the manager reconnects in the background.
pub fn redis_connection_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
}

/// A Redis connection manager that connects on first use (the process starts while Redis is down).
pub fn redis_lazy(url: &str) -> redis::RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    ConnectionManager::new_lazy_with_config(client, redis_connection_config())
}

/// Queue settings shared by producers and consumers of one queue.
fn queue_config(
    namespace: &str,
    queue: &str,
    heartbeat: Duration,
    missed_heartbeats: u32,
) -> QueueConfig {
    QueueConfig::default()
        .queue(queue_key(namespace, queue))
        .batch_size(if queue == crate::events::EVENTS_QUEUE {
            100
        } else {
            10
        })
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed_heartbeats.max(1) as usize)
}

pub fn storage<T>(conn: ConnectionManager, config: QueueConfig) -> RedisStorage<T> {
    RedisStorage::new(conn).with_config(config)
}

/// Queue `name` as every producer and consumer of this deployment opens it (namespace and
/// heartbeat settings from the configuration).
pub fn queue<T>(conn: ConnectionManager, config: &Config, name: &str) -> RedisStorage<T> {
    storage(
        conn,
        queue_config(
            &config.redis_namespace,
            name,
            config.worker_heartbeat,
            config.worker_missed_heartbeats,
        ),
    )
}

/// Periodic clean-up: expired refresh tokens (kept 7 days past expiry for reuse detection) and
/// idempotency records older than 24 hours.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Housekeeping {
    pub requested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct HousekeepingReport {
    pub refresh_tokens_deleted: u64,
    pub idempotency_keys_deleted: u64,
    pub event_receipts_deleted: u64,
}

pub async fn run_housekeeping(pool: &PgPool) -> AppResult<HousekeepingReport> {
    let tokens =
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected();
    let receipts = crate::events::prune_receipts(pool).await?;
    let keys =
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(HousekeepingReport {
        refresh_tokens_deleted: tokens,
        idempotency_keys_deleted: keys,
        event_receipts_deleted: receipts,
    })
}

/// Jobs waiting and running in one queue, read from apalis's Redis keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    pub pending: u64,
    pub running: u64,
    pub done: u64,
    pub dead: u64,
}

pub async fn queue_depth(
    conn: &mut ConnectionManager,
    namespace: &str,
    queue: &str,
) -> AppResult<QueueDepth> {
    let ns = queue_key(namespace, queue);
    let workers: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{ns}:workers"))
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let mut pipe = redis::pipe();
    pipe.llen(format!("{ns}:active"))
        .zcard(format!("{ns}:scheduled"))
        .scard(format!("{ns}:done"))
        .scard(format!("{ns}:dead"));
    for w in &workers {
        pipe.scard(format!("{ns}:inflight:{w}"));
    }
    let v: Vec<u64> = pipe.query_async(conn).await?;
    Ok(QueueDepth {
        pending: v[0] + v[1],
        running: v[4..].iter().sum(),
        done: v[2],
        dead: v[3],
    })
}
