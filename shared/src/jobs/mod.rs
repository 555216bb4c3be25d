//! Job queues (apalis on Redis). Payloads carry ids and parameters only; workers reload state.
//! Every queue lives under `{REDIS_NAMESPACE}:{queue}` so deployments and test runs never share one.
//!
//! Each kind of job is one [`Job`] (its queue, attempts, batch and polling), opened as a
//! [`Queue`] by every producer and consumer alike; [`Queue::enqueue`] is the one way onto a queue
//! (a Redis that is away or slow answers [`AppError::Unavailable`], i.e. 503), and [`record`] the
//! one place the per-queue outcome metric is counted. The worker's consumers run them
//! (`portal_worker::Work`).

pub mod exports;

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config as QueueConfig, RedisStorage};
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use sqlx::PgPool;

use crate::error::{AppError, AppResult};

pub const HOUSEKEEPING_QUEUE: &str = "housekeeping";

/// How long a producer waits for Redis to take a job before giving up with a 503.
pub const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(3);

/// One kind of background job: the payload is `Self`; the constants say where it queues and how
/// it is consumed.
pub trait Job: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    /// The queue's name (under the deployment's `REDIS_NAMESPACE`).
    const QUEUE: &'static str;
    /// Runs of one job, retries included, before it is given up.
    const MAX_ATTEMPTS: usize;
    /// Jobs a consumer takes from Redis per poll.
    const BATCH: usize = 10;
    /// How often an idle consumer looks for work.
    const POLL: Duration;
}

impl Job for Housekeeping {
    const QUEUE: &'static str = HOUSEKEEPING_QUEUE;
    const MAX_ATTEMPTS: usize = 5;
    const POLL: Duration = Duration::from_millis(500);
}

impl Job for crate::jobs::exports::ExportJob {
    const QUEUE: &'static str = crate::jobs::exports::EXPORTS_QUEUE;
    /// Counted in the job's row (`export_jobs.attempts`); then the export is marked failed.
    const MAX_ATTEMPTS: usize = 3;
    const POLL: Duration = Duration::from_millis(200);
}

impl Job for crate::pipeline::WatchBatch {
    const QUEUE: &'static str = crate::pipeline::EVENTS_QUEUE;
    /// Never given up: a batch stays queued until it has landed (exactly once).
    const MAX_ATTEMPTS: usize = usize::MAX;
    const BATCH: usize = 100;
    const POLL: Duration = Duration::from_millis(100);
}

/// The consumer's side of the watch-events queue: the same queue, read so that a job this
/// release cannot read stops nothing ([`crate::pipeline::QueuedBatch`]).
impl Job for crate::pipeline::QueuedBatch {
    const QUEUE: &'static str = <crate::pipeline::WatchBatch as Job>::QUEUE;
    const MAX_ATTEMPTS: usize = <crate::pipeline::WatchBatch as Job>::MAX_ATTEMPTS;
    const BATCH: usize = <crate::pipeline::WatchBatch as Job>::BATCH;
    const POLL: Duration = <crate::pipeline::WatchBatch as Job>::POLL;
}

/// What became of a job (or of several: the events consumer lands batches together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Failed this time; it runs again.
    Retry,
    /// Put back on the queue for later without running (an export while its client has one
    /// being built).
    Deferred,
    /// Failed for the last time ([`Job::MAX_ATTEMPTS`]); given up.
    Dead,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Retry => "retry",
            Outcome::Deferred => "deferred",
            Outcome::Dead => "dead",
        }
    }
}

/// Counts `n` jobs of `J` with this outcome: `portal_jobs_total{queue, outcome}`.
pub fn record<J: Job>(outcome: Outcome, n: u64) {
    metrics::counter!("portal_jobs_total", "queue" => J::QUEUE, "outcome" => outcome.label())
        .increment(n);
}

/// A queue of `J` as every producer and consumer of this deployment opens it.
pub struct Queue<J: Job> {
    storage: RedisStorage<J>,
    conn: ConnectionManager,
}

impl<J: Job> Clone for Queue<J> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            conn: self.conn.clone(),
        }
    }
}

/// Due jobs moved per Redis script by [`Queue::promote_due`]: well below the ~8,000 values a
/// script can unpack into one command's arguments.
pub const PROMOTE_CHUNK: usize = 1000;

/// Moves up to `ARGV[2]` jobs due by `ARGV[1]` (seconds since the epoch, the clock apalis
/// schedules by) from the scheduled set (`KEYS[1]`) to the active list (`KEYS[2]`) in due order,
/// and wakes the consumers (`KEYS[3]`, apalis's signal list), as apalis's own fetch does.
const PROMOTE_DUE_SCRIPT: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
    redis.call('RPUSH', KEYS[2], unpack(ids))
    redis.call('ZREM', KEYS[1], unpack(ids))
    redis.call('DEL', KEYS[3])
    redis.call('LPUSH', KEYS[3], 1)
end
return #ids
"#;

static PROMOTE_DUE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(PROMOTE_DUE_SCRIPT));

/// Takes up to `ARGV[2]` finished jobs out of the done set (`KEYS[1]`), deletes their payloads
/// (`KEYS[2]`, the data hash) and metadata (`ARGV[1]:<id>`), and adds them to the count of jobs
/// finished before (`KEYS[3]`).
const REAP_FINISHED_SCRIPT: &str = r#"
local ids = redis.call('SPOP', KEYS[1], tonumber(ARGV[2]))
for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', ARGV[1] .. ':' .. id)
end
if #ids > 0 then
    redis.call('INCRBY', KEYS[3], #ids)
end
return #ids
"#;

static REAP_FINISHED: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(REAP_FINISHED_SCRIPT));

/// The key counting a queue's finished jobs whose payloads [`Queue::reap_finished`] deleted,
/// beside the queue's done set.
fn reaped_key(done_set: &str) -> String {
    format!("{done_set}-reaped")
}

impl<J: Job> Queue<J> {
    pub fn open(conn: ConnectionManager, config: &Config) -> Self {
        Self {
            conn: conn.clone(),
            storage: storage(
                conn,
                queue_config::<J>(
                    &config.redis_namespace,
                    config.worker_heartbeat,
                    config.worker_missed_heartbeats,
                ),
            ),
        }
    }

    /// The apalis backend, for a consumer.
    pub fn storage(&self) -> RedisStorage<J> {
        self.storage.clone()
    }

    /// Puts `job` on the queue. Redis away, or slower than [`ENQUEUE_TIMEOUT`]: a 503 for the
    /// caller to pass on (nothing was queued).
    pub async fn enqueue(&self, job: J) -> AppResult<()> {
        self.push(TaskBuilder::new(job).build()).await
    }

    /// Puts `job` on the queue to run no sooner than `delay` from now.
    pub async fn enqueue_after(&self, job: J, delay: Duration) -> AppResult<()> {
        self.push(TaskBuilder::new(job).run_after(delay).build())
            .await
    }

    /// Moves every job that is due from the queue's scheduled set to its active list,
    /// [`PROMOTE_CHUNK`] per Redis script; returns how many moved.
    ///
    /// apalis queues every job through the scheduled set (due at once unless delayed) and its
    /// consumers move the due ones when they fetch, all in one script whose commands take them
    /// as arguments. Beyond ~8,000 due at once that script fails ("too many results to unpack")
    /// and the consumer dies, as does every consumer started after it: a backlog that large
    /// (no worker taking jobs for a few seconds under load) would stop the queue for good. So the
    /// worker moves due jobs itself, in chunks, before its consumers start and then every
    /// [`UPKEEP_EVERY`]: apalis's fetch then only ever finds a few due.
    pub async fn promote_due(&self) -> AppResult<usize> {
        let cfg = self.storage.get_config();
        let (scheduled, active, signal) = (
            cfg.scheduled_jobs_set(),
            cfg.active_jobs_list(),
            cfg.signal_list(),
        );
        self.in_chunks("could not move due jobs", || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let mut run = PROMOTE_DUE.key(&scheduled);
            run.key(&active).key(&signal).arg(now).arg(PROMOTE_CHUNK);
            run
        })
        .await
    }

    /// Deletes what apalis keeps of finished jobs: their payloads and metadata (a watch batch's
    /// payload is its events, ~12 KB per 100), [`PROMOTE_CHUNK`] per Redis script; returns how many
    /// jobs it cleared. apalis keeps them for ever (its own vacuum reads the whole payload hash in
    /// one script), so without this Redis grows by every event ever ingested. Their number stays
    /// in [`QueueDepth::done`]. Given-up jobs (`dead`) keep theirs, for an operator to look at.
    pub async fn reap_finished(&self) -> AppResult<usize> {
        let cfg = self.storage.get_config();
        let (done, data, meta) = (
            cfg.done_jobs_set(),
            cfg.job_data_hash(),
            cfg.job_meta_hash(),
        );
        let reaped = reaped_key(&done);
        self.in_chunks("could not clear finished jobs", || {
            let mut run = REAP_FINISHED.key(&done);
            run.key(&data).key(&reaped).arg(&meta).arg(PROMOTE_CHUNK);
            run
        })
        .await
    }

    /// Runs the script `invocation` builds until it handles fewer than [`PROMOTE_CHUNK`] jobs;
    /// returns how many it handled in all.
    async fn in_chunks<'a>(
        &self,
        failure: &'static str,
        invocation: impl Fn() -> redis::ScriptInvocation<'a>,
    ) -> AppResult<usize> {
        let mut conn = self.conn.clone();
        let mut handled = 0;
        loop {
            let n: usize = invocation().invoke_async(&mut conn).await.map_err(|e| {
                // Debug: the worker runs this every 100 ms and says once that it fails.
                tracing::debug!(queue = J::QUEUE, error = %e, "{failure}");
                AppError::Unavailable {
                    dependency: "queue",
                    retry_after: 5,
                }
            })?;
            handled += n;
            if n < PROMOTE_CHUNK {
                return Ok(handled);
            }
        }
    }

    async fn push(&self, task: apalis::prelude::Task<J>) -> AppResult<()> {
        let mut storage = self.storage.clone();
        let error = match tokio::time::timeout(ENQUEUE_TIMEOUT, storage.push_task(task)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "redis timed out".to_string(),
        };
        tracing::warn!(queue = J::QUEUE, %error, "could not enqueue a job");
        Err(AppError::Unavailable {
            dependency: "queue",
            retry_after: 5,
        })
    }
}

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

/// How often the worker moves due jobs to the active lists ([`Queue::promote_due`]) and clears
/// finished ones ([`Queue::reap_finished`]).
pub const UPKEEP_EVERY: Duration = Duration::from_millis(100);

/// Queue settings shared by producers and consumers of one queue.
///
/// Without task locks and task events. A lock (apalis's `acquire_leases`, one script per task
/// when a consumer starts it) only records who runs the task in its metadata, and removes its id
/// from the active list with `LREM`, which reads the whole list: the fetch has already taken the
/// id out, so every lock read the whole backlog for nothing (86–100 µs of Redis a task in
/// `portal-bench`, as much as the seen-events filter's `BITFIELD`s), and every heartbeat renewed
/// every lock. What a consumer holds is its in-flight set, which the fetch fills and which is
/// re-queued when its heartbeats stop, locked or not. Task events are `PUBLISH`es that no consumer
/// of ours listens to.
fn queue_config<J: Job>(
    namespace: &str,
    heartbeat: Duration,
    missed_heartbeats: u32,
) -> QueueConfig {
    QueueConfig::default()
        .queue(queue_key(namespace, J::QUEUE))
        .batch_size(J::BATCH)
        .heartbeat_interval(heartbeat)
        .missed_heartbeats(missed_heartbeats.max(1) as usize)
        .lock_tasks(false)
        .emit_events(false)
}

fn storage<T>(conn: ConnectionManager, config: QueueConfig) -> RedisStorage<T> {
    RedisStorage::new(conn).with_config(config)
}

/// Periodic clean-up: expired refresh tokens (kept 7 days past expiry for reuse detection),
/// idempotency records older than 24 hours, and event receipts older than 35 days. Expired
/// export files are swept by the worker's export cleanup.
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
    let tokens = crate::pg::sessions::prune(pool).await?;
    let receipts = crate::pg::receipts::prune(pool).await?;
    let keys = crate::pg::idempotency::prune(pool).await?;
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
        .scard(format!("{ns}:dead"))
        .get(reaped_key(&format!("{ns}:done")));
    for w in &workers {
        pipe.scard(format!("{ns}:inflight:{w}"));
    }
    let v: Vec<Option<u64>> = pipe.query_async(conn).await?;
    let n = |i: usize| v[i].unwrap_or(0);
    Ok(QueueDepth {
        pending: n(0) + n(1),
        running: v[5..].iter().map(|x| x.unwrap_or(0)).sum(),
        done: n(2) + n(4),
        dead: n(3),
    })
}
