//! Partner Portal worker: apalis consumers on Redis. Any number of worker processes may run against
//! the same queues; each registers under its own id, so the tasks of a worker that dies are picked
//! up by the others once its heartbeats stop.

pub mod events;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apalis::layers::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use apalis::layers::retry::{BackoffRetryPolicy, HasherRng, RetryPolicy};
use apalis::prelude::*;
use chrono::Utc;
use portal_shared::ch::ClickHouse;
use portal_shared::config::Config;
use portal_shared::domain::ids::ClientId;
use portal_shared::error::{AppError, AppResult};
use portal_shared::jobs::exports::{self, ExportJob};
use portal_shared::jobs::{self, Housekeeping, Job, Outcome, Queue};
use portal_shared::pipeline::{QueuedBatch, WatchBatch};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

/// Shared state handed to every job handler.
#[derive(Clone)]
pub struct WorkerState {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub ch: ClickHouse,
    pub catalogue: portal_shared::pg::classes::Catalogue,
    pub storage: portal_shared::storage::Storage,
    /// Clients with an export being built in this process (see [`ExportSlots`]).
    pub export_slots: ExportSlots,
}

impl WorkerState {
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        let db = portal_shared::pg::pool(&config)?;
        let redis = jobs::redis_lazy(config.redis_url.expose())?;
        let mut ch = ClickHouse::from_config(&config);
        if let Err(e) = ch.detect_version().await {
            tracing::warn!(error = %e, "clickhouse not reachable at start-up");
        }
        let storage = portal_shared::storage::Storage::from_config(&config)?;
        if let Err(e) = storage.check().await {
            tracing::warn!(error = %e, "export storage does not answer; exports fail until it does");
        }
        Ok(Self {
            storage,
            config: Arc::new(config),
            db,
            redis,
            ch,
            catalogue: portal_shared::pg::classes::Catalogue::default(),
            export_slots: ExportSlots::default(),
        })
    }
}

/// The clients whose export this worker process is building. A process builds at most one export
/// per client at a time: a client's further jobs are put back on the queue for a moment, so a
/// client with a backlog never takes every export slot and other clients' exports go ahead.
#[derive(Clone, Default)]
pub struct ExportSlots(Arc<Mutex<HashSet<ClientId>>>);

impl ExportSlots {
    /// The client's slot in this process, unless one of its exports is being built already.
    pub fn take(&self, client_id: ClientId) -> Option<ExportSlot> {
        let mut busy = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        busy.insert(client_id).then(|| ExportSlot {
            slots: self.clone(),
            client_id,
        })
    }
}

/// Held while a client's export is built; frees the client's slot when dropped.
pub struct ExportSlot {
    slots: ExportSlots,
    client_id: ClientId,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        self.slots
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.client_id);
    }
}

/// How long a deferred export waits before it is offered again.
const EXPORT_DEFER: Duration = Duration::from_secs(2);

/// Polls the queue every `interval`. apalis's own interval strategy re-arms its timer without
/// polling it and can stall until the next heartbeat (seconds); this one drains the tokio
/// interval, so every tick wakes the consumer.
pub struct Tick(tokio::time::Interval);

impl Tick {
    pub fn new(every: Duration) -> Self {
        let mut i = tokio::time::interval(every);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Tick(i)
    }
}

impl apalis_core::backend::ext::poll_strategy::PollStrategy for Tick {
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _snapshot: &apalis_core::backend::ext::poll_strategy::PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        let mut fired = false;
        while self.0.poll_tick(cx).is_ready() {
            fired = true;
        }
        if fired {
            std::task::Poll::Ready(Some(()))
        } else {
            std::task::Poll::Pending
        }
    }
}

/// A worker id unique to this process (apalis re-queues a dead worker's tasks only when a
/// restarted process does not reuse its id).
pub fn worker_id(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!(
        "{role}-{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Retries in-process with exponential backoff (200 ms … 10 s, jittered).
fn retry_policy() -> BackoffRetryPolicy<ExponentialBackoff> {
    let backoff = ExponentialBackoffMaker::new(
        Duration::from_millis(200),
        Duration::from_secs(10),
        0.5,
        HasherRng::default(),
    )
    .expect("min backoff is below max")
    .make_backoff();
    RetryPolicy::retries(3).with_backoff(backoff)
}

/// What the worker does with one kind of [`Job`]: run it; once a run fails and
/// [`Job::MAX_ATTEMPTS`] runs have been made, give it up. [`consume`] is the one apalis handler
/// for every such job: it counts outcomes ([`jobs::record`]) and decides retry or give-up.
pub trait Work: Job {
    /// One run.
    fn run(&self, state: &WorkerState) -> impl Future<Output = AppResult<Outcome>> + Send;
    /// Runs made so far, this one included: apalis's count of this task's attempts, unless the
    /// job keeps its own.
    fn attempts(
        &self,
        _state: &WorkerState,
        attempt: &Attempt,
    ) -> impl Future<Output = usize> + Send {
        let n = attempt.current();
        async move { n }
    }
    /// The last run failed with `error`: record that the job will not run again.
    fn give_up(&self, _state: &WorkerState, _error: &AppError) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The apalis handler of every [`Work`] job.
async fn consume<J: Work>(
    job: J,
    state: Data<WorkerState>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    match job.run(&state).await {
        Ok(outcome) => {
            jobs::record::<J>(outcome, 1);
            Ok(())
        }
        Err(e) => {
            let attempts = job.attempts(&state, &attempt).await;
            tracing::warn!(queue = J::QUEUE, attempts, error = %e, "job failed");
            if attempts >= J::MAX_ATTEMPTS {
                job.give_up(&state, &e).await;
                jobs::record::<J>(Outcome::Dead, 1);
                Err(AbortError::new(e).into())
            } else {
                jobs::record::<J>(Outcome::Retry, 1);
                Err(e.into())
            }
        }
    }
}

/// Refresh tokens, idempotency records, event receipts and export files past their time.
impl Work for Housekeeping {
    async fn run(&self, state: &WorkerState) -> AppResult<Outcome> {
        let report = jobs::run_housekeeping(&state.db).await?;
        let (files, rows) = exports::cleanup(&state.db, &state.storage).await?;
        tracing::info!(
            ?report,
            export_files_deleted = files,
            export_rows_deleted = rows,
            "housekeeping done"
        );
        Ok(Outcome::Done)
    }
}

/// Builds one export file. While another export of the same client is being built in this
/// process, the job goes back on the queue (after [`EXPORT_DEFER`]) instead. Attempts are counted
/// in the job's row; giving up marks the export failed with the last error.
impl Work for ExportJob {
    async fn run(&self, state: &WorkerState) -> AppResult<Outcome> {
        let Some(client_id) =
            portal_shared::pg::unscoped::pending_export_client(&state.db, self.job_id).await?
        else {
            // Finished, failed or deleted meanwhile: nothing to do.
            return Ok(Outcome::Done);
        };
        let Some(_slot) = state.export_slots.take(client_id) else {
            Queue::<ExportJob>::open(state.redis.clone(), &state.config)
                .enqueue_after(self.clone(), EXPORT_DEFER)
                .await?;
            tracing::debug!(job = %self.job_id, client = %client_id, "export deferred: the client has one being built");
            return Ok(Outcome::Deferred);
        };
        let ctx = exports::ExportCtx {
            db: &state.db,
            ch: &state.ch,
            storage: &state.storage,
        };
        exports::run(&ctx, client_id, self.job_id).await?;
        Ok(Outcome::Done)
    }

    async fn attempts(&self, state: &WorkerState, _attempt: &Attempt) -> usize {
        match portal_shared::pg::unscoped::pending_export_client(&state.db, self.job_id).await {
            Ok(Some(client_id)) => {
                portal_shared::pg::exports::attempts(&state.db, client_id, self.job_id)
                    .await
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    async fn give_up(&self, state: &WorkerState, error: &AppError) {
        if let Ok(Some(client_id)) =
            portal_shared::pg::unscoped::pending_export_client(&state.db, self.job_id).await
        {
            let _ = portal_shared::pg::exports::fail(
                &state.db,
                client_id,
                self.job_id,
                &error.public_message(),
            )
            .await;
        }
    }
}

/// Enqueues housekeeping every `every` (every worker does; the job is idempotent and cheap).
async fn schedule_housekeeping(state: WorkerState, every: Duration) {
    let queue = Queue::<Housekeeping>::open(state.redis.clone(), &state.config);
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        // A failure is logged by the queue; the next tick tries again.
        let _ = queue
            .enqueue(Housekeeping {
                requested_at: Utc::now(),
            })
            .await;
    }
}

/// The worker's upkeep of every queue in Redis: moves due jobs to the active lists
/// ([`Queue::promote_due`]) and deletes the payloads of finished jobs ([`Queue::reap_finished`]),
/// at once and then every [`jobs::UPKEEP_EVERY`] for as long as the returned task runs. A failing
/// round is logged once (each step at `debug`); the next round tries again.
async fn queue_upkeep(state: &WorkerState) -> tokio::task::JoinHandle<()> {
    let events = Queue::<WatchBatch>::open(state.redis.clone(), &state.config);
    let exports = Queue::<ExportJob>::open(state.redis.clone(), &state.config);
    let housekeeping = Queue::<Housekeeping>::open(state.redis.clone(), &state.config);
    // Returns whether every step succeeded.
    let round = move || {
        let (events, exports, housekeeping) =
            (events.clone(), exports.clone(), housekeeping.clone());
        async move {
            let r = tokio::join!(
                events.promote_due(),
                exports.promote_due(),
                housekeeping.promote_due(),
                events.reap_finished(),
                exports.reap_finished(),
                housekeeping.reap_finished()
            );
            [r.0, r.1, r.2, r.3, r.4, r.5].iter().all(Result::is_ok)
        }
    };
    let mut health = Health::default();
    let mut report = move |ok: bool| match (health.changed(ok), ok) {
        (true, false) => {
            tracing::warn!("queue upkeep failed (is Redis reachable?); retrying every 100 ms")
        }
        (true, true) => tracing::info!("queue upkeep works again"),
        _ => {}
    };
    report(round().await);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(jobs::UPKEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            report(round().await);
        }
    })
}

/// Keeps the seen-events filter complete: at once and then every [`SEEN_CHECK_EVERY`], if its
/// completeness marker is missing (a new deployment, Redis data lost), adds every receipt of the
/// ledger to it ([`SeenFilter::backfill`](portal_shared::seen::SeenFilter::backfill)). Until then
/// the API looks every event up in the ledger.
fn seen_upkeep(state: &WorkerState) -> tokio::task::JoinHandle<()> {
    let seen = portal_shared::seen::SeenFilter::open(state.redis.clone(), &state.config);
    let db = state.db.clone();
    tokio::spawn(async move {
        if !seen.enabled() {
            return;
        }
        let mut tick = tokio::time::interval(SEEN_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = Health::default();
        loop {
            tick.tick().await;
            let started = std::time::Instant::now();
            let built = match seen.is_complete().await {
                Ok(true) => Ok(None),
                Ok(false) => seen.backfill(&db).await.map(Some),
                Err(e) => Err(e),
            };
            let news = health.changed(built.is_ok());
            match built {
                Ok(Some(n)) => tracing::info!(
                    receipts = n,
                    ms = started.elapsed().as_millis() as u64,
                    "seen-events filter built from the ledger"
                ),
                Ok(None) => {}
                Err(e) if news => {
                    tracing::warn!(error = %e, "seen-events filter not built (is Redis or Postgres reachable?); trying again every 10 s")
                }
                Err(e) => tracing::debug!(error = %e, "seen-events filter still not built"),
            }
        }
    })
}

/// A periodic task's health as its log tells it: a failure is said once when it begins and once
/// when it ends, not every round.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    /// Records this round's outcome; whether it is news (the first failure after successes, or the
    /// first success after failures).
    fn changed(&mut self, ok: bool) -> bool {
        let news = ok == self.failing;
        self.failing = !ok;
        news
    }
}

/// How often a worker checks that the seen-events filter is complete.
const SEEN_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Adds a consumer of `J` to `monitor`: its queue polled every [`Job::POLL`], `concurrency` jobs
/// at once, retried in-process with backoff, each run by [`consume`].
fn register<J: Work>(monitor: Monitor, state: &WorkerState, concurrency: usize) -> Monitor {
    let id = worker_id(J::QUEUE);
    let storage = Queue::<J>::open(state.redis.clone(), &state.config).storage();
    let state = state.clone();
    monitor.register(move |restarts| {
        WorkerBuilder::new(format!("{id}-{restarts}"))
            .backend(storage.clone().poll_with_strategy(Tick::new(J::POLL)))
            .data(state.clone())
            .concurrency(concurrency)
            .retry(retry_policy())
            .build(consume::<J>)
    })
}

/// Runs the worker until `shutdown` resolves; then stops taking jobs, finishes the ones in flight
/// (up to the shutdown timeout) and returns. Returns an error if a consumer dies on its own
/// (e.g. Redis lost): the process should exit and be restarted with a fresh worker id.
pub async fn run_until<S>(state: WorkerState, shutdown: S) -> anyhow::Result<()>
where
    S: Future<Output = ()> + Send + 'static,
{
    let cfg = state.config.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(schedule_housekeeping(
        state.clone(),
        Duration::from_secs(3600),
    ));

    // Before any consumer fetches: a backlog may have piled up while no worker ran.
    let upkeep = queue_upkeep(&state).await;
    let seen = seen_upkeep(&state);
    let (ingest, flusher) = events::start(state.clone(), stop_rx.clone());
    let events_storage = Queue::<QueuedBatch>::open(state.redis.clone(), &cfg).storage();
    let events_id = worker_id(WatchBatch::QUEUE);
    tracing::info!(worker = %events_id, namespace = %cfg.redis_namespace, "portal-worker starting");
    let events_concurrency = cfg.events_concurrency;
    // Watch events have their own consumer: batches go to one flusher that lands them together.
    let monitor = Monitor::new().register(move |restarts| {
        WorkerBuilder::new(format!("{events_id}-{restarts}"))
            .backend(
                events_storage
                    .clone()
                    .poll_with_strategy(Tick::new(WatchBatch::POLL)),
            )
            .data(ingest.clone())
            .concurrency(events_concurrency)
            .build(events::handle)
    });
    let monitor = register::<ExportJob>(monitor, &state, 2);
    let monitor =
        register::<Housekeeping>(monitor, &state, 2).shutdown_timeout(cfg.shutdown_timeout);

    let mut stop_rx2 = stop_rx.clone();
    let signal = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
        Ok(())
    };
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = monitor.run_with_signal(signal).await;
    scheduler.abort();
    upkeep.abort();
    seen.abort();
    // The flusher saw the stop signal too: it lands what it holds and answers the rest.
    let _ = tokio::time::timeout(cfg.shutdown_timeout, flusher).await;
    let stopped_by_signal = *stop_rx.borrow();
    match result {
        Ok(()) if stopped_by_signal => {
            tracing::info!("portal-worker stopped");
            Ok(())
        }
        Ok(()) => Err(anyhow::anyhow!(
            "a consumer stopped on its own (is Redis reachable?)"
        )),
        Err(e) => Err(anyhow::anyhow!("worker failed: {e}")),
    }
}

/// The binary's body: migrations (optional), then consume until SIGTERM/Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    portal_shared::telemetry::metrics_handle();
    let state = WorkerState::new(config).await?;
    if state.config.migrate_on_start {
        portal_shared::pg::migrate_with_retry(&state.db, Duration::from_secs(60)).await?;
        let migrations = portal_shared::ch::embedded()?;
        portal_shared::ch::migrate(&state.ch, &state.db, &migrations).await?;
    }
    run_until(state, shutdown_signal()).await
}

pub use portal_shared::telemetry::shutdown_signal;
