//! Watch-event consumer. Each apalis task (one API batch) hands its events to an in-process
//! buffer and waits; the flusher lands the buffer when it holds `EVENTS_FLUSH_ROWS` rows or its
//! oldest row has waited `EVENTS_FLUSH_MS`, then answers every waiting task. A task is
//! acknowledged only after its events are in ClickHouse and counted in Postgres, so a crash at any
//! point leaves it on the queue, and the receipt ledger makes the retry count nothing twice
//! (`portal_shared::pipeline::land_pending`, which the demo seed uses too):
//!
//! 0. own (beside step 1): insert the batches' `landed_watch_batches` rows in a transaction that
//!    stays open until step 4 (a second delivery of a batch still being landed waits on its row,
//!    then finds it landed; batches landed before are skipped);
//! 1. claim: insert receipts (first claim of an event wins; a redelivered batch resumes its own
//!    pending receipts);
//! 2. insert the claimed events into ClickHouse in one INSERT (for resumed events, only those
//!    not already there);
//! 3. profile: in the owning transaction, lock the affected members in key order and gather the
//!    events' days and seconds per category (no ClickHouse read; a member counted before this
//!    profile state existed has it rebuilt once from their ClickHouse history instead);
//! 4. land: in the owning transaction, add the events to the member summaries and the profile
//!    state, set active days and favourite category from that state, and commit, which records
//!    the batches as landed.
//!
//! After a landing commits, the flusher announces the clients whose events it counted on
//! `{ns}:clients:changed` (one PUBLISH per flush), and every API instance drops their cached
//! answers.
//!
//! While Postgres or ClickHouse is unreachable the flusher keeps retrying with backoff; tasks stay
//! in flight (their worker keeps heartbeating), and nothing is acknowledged until it lands.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use moka::future::Cache;
use portal_shared::announce;
use portal_shared::domain::ids::ClientId;
use portal_shared::error::AppError;
use portal_shared::jobs::{self, Outcome};
use portal_shared::pipeline::{self, ChEvent, Flushed, Pending, QueuedBatch, WatchBatch};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::WorkerState;

type Reply = oneshot::Sender<Result<usize, String>>;

/// Handle that apalis tasks use to reach the flusher.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<(WatchBatch, Reply)>,
}

pub fn start(
    state: WorkerState,
    stop: watch::Receiver<bool>,
) -> (Ingest, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(state.config.events_concurrency.max(1) * 2);
    let handle = tokio::spawn(flusher(state, rx, stop));
    (Ingest { tx }, handle)
}

/// The apalis handler: waits until the batch has landed. A job this release cannot read is
/// answered with the reason (apalis runs it again later, then keeps it in the dead set).
pub async fn handle(job: QueuedBatch, ingest: Data<Ingest>) -> Result<(), BoxDynError> {
    let batch = job.into_batch().map_err(|reason| {
        tracing::error!(%reason, "watch-events job not landed");
        jobs::record::<WatchBatch>(Outcome::Retry, 1);
        reason
    })?;
    let (reply, answer) = oneshot::channel();
    ingest
        .tx
        .send((batch, reply))
        .await
        .map_err(|_| "event buffer closed (worker stopping)")?;
    match answer.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("event buffer closed (worker stopping)".into()),
    }
}

/// Gathers tasks into landings and hands each to a lander: a landing closes when it holds
/// `EVENTS_FLUSH_ROWS` rows or its oldest row has waited `EVENTS_FLUSH_MS`; then it waits for one
/// of `EVENTS_LANDERS` lander slots, still gathering meanwhile (up to the row limit). So under load
/// landings grow while the landers are busy, and when idle an event waits at most the interval.
/// Landings run side by side safely: each owns its batches, and the counting step locks the
/// members it touches in key order (see `portal_shared::pipeline::land_pending`).
async fn flusher(
    state: WorkerState,
    mut rx: mpsc::Receiver<(WatchBatch, Reply)>,
    mut stop: watch::Receiver<bool>,
) {
    let tz_cache: Cache<ClientId, chrono_tz::Tz> = Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(60))
        .build();
    let max_rows = state.config.events_flush_rows;
    let max_wait = state.config.events_flush_interval;
    let landers = state.config.events_landers.max(1);
    let slots = Arc::new(Semaphore::new(landers));
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut rows = first.0.events.len();
        let mut items = vec![first];
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut open = true;
        while rows < max_rows && open {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(i) => { rows += i.0.events.len(); items.push(i); }
                    None => open = false,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let permit = loop {
            tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => break permit,
                item = rx.recv(), if open && rows < max_rows => match item {
                    Some(i) => { rows += i.0.events.len(); items.push(i); }
                    None => open = false,
                },
            }
        };
        let Ok(permit) = permit else { break };
        let (state, tz_cache, mut stop) = (state.clone(), tz_cache.clone(), stop.clone());
        tokio::spawn(async move {
            land_and_answer(&state, &tz_cache, items, &mut stop).await;
            drop(permit);
        });
    }
    // Stopping: landings under way finish (and answer their tasks); tasks still waiting in the
    // channel are answered with an error, so apalis puts them back on the queue.
    let _ = slots.acquire_many(landers as u32).await;
    rx.close();
    while let Some((_, reply)) = rx.recv().await {
        let _ = reply.send(Err("worker stopping".into()));
    }
}

/// Lands one gathering of tasks and answers each of them.
async fn land_and_answer(
    state: &WorkerState,
    tz_cache: &Cache<ClientId, chrono_tz::Tz>,
    items: Vec<(WatchBatch, Reply)>,
    stop: &mut watch::Receiver<bool>,
) {
    let batches: Vec<&WatchBatch> = items.iter().map(|(b, _)| b).collect();
    let result = flush_with_retry(state, tz_cache, &batches, stop).await;
    match result {
        Ok(f) => {
            metrics::counter!("portal_events_landed_total").increment(f.events_counted as u64);
            jobs::record::<WatchBatch>(Outcome::Done, items.len() as u64);
            for (_, reply) in items {
                let _ = reply.send(Ok(f.events_counted));
            }
            announce_landed(state, f.clients).await;
        }
        Err(e) => {
            jobs::record::<WatchBatch>(Outcome::Retry, items.len() as u64);
            for (_, reply) in items {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Tells every API instance that these clients' events landed (one PUBLISH per flush, after the
/// landing committed), so they drop the clients' cached dashboard, analytics, funnel, billing and
/// member-list answers at once. A failure is logged: the events are counted, and the API's read-cache
/// lifetime (`READ_CACHE_TTL_SECS`) is the fallback.
async fn announce_landed(state: &WorkerState, clients: Vec<ClientId>) {
    if clients.is_empty() {
        return;
    }
    let channel = announce::clients_changed_channel(&state.config.redis_namespace);
    let payload = announce::ChangedClients::Some(clients).payload();
    if let Err(e) =
        announce::publish(&state.redis, &channel, &payload, Duration::from_secs(3)).await
    {
        tracing::warn!(error = %e, "landed events not announced; API instances show them when their cached answers expire");
    }
}

async fn flush_with_retry(
    state: &WorkerState,
    tz_cache: &Cache<ClientId, chrono_tz::Tz>,
    batches: &[&WatchBatch],
    stop: &mut watch::Receiver<bool>,
) -> Result<Flushed, String> {
    let mut delay = Duration::from_millis(200);
    let mut other_failures = 0;
    loop {
        match flush(state, tz_cache, batches).await {
            Ok(f) => return Ok(f),
            Err(e) => {
                let transient = matches!(e, AppError::Unavailable { .. });
                if !transient {
                    other_failures += 1;
                }
                tracing::warn!(error = %e, transient, "could not land watch events; retrying");
                if other_failures >= 3 {
                    return Err(e.to_string());
                }
                if *stop.borrow() {
                    return Err(format!("worker stopping: {e}"));
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = stop.wait_for(|s| *s) => return Err(format!("worker stopping: {e}")),
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn client_timezones(
    state: &WorkerState,
    cache: &Cache<ClientId, chrono_tz::Tz>,
    clients: &HashSet<ClientId>,
) -> Result<HashMap<ClientId, chrono_tz::Tz>, AppError> {
    let mut out = HashMap::new();
    let mut missing = Vec::new();
    for c in clients {
        match cache.get(c).await {
            Some(tz) => {
                out.insert(*c, tz);
            }
            None => missing.push(*c),
        }
    }
    if !missing.is_empty() {
        for (id, tz) in portal_shared::pg::clients::timezones(&state.db, &missing).await? {
            cache.insert(id, tz).await;
            out.insert(id, tz);
        }
    }
    Ok(out)
}

/// One attempt at landing `batches`. Safe to repeat: every step is idempotent.
pub async fn flush(
    state: &WorkerState,
    tz_cache: &Cache<ClientId, chrono_tz::Tz>,
    batches: &[&WatchBatch],
) -> Result<Flushed, AppError> {
    let catalogue = state.catalogue.get(&state.db).await?;
    let clients: HashSet<ClientId> = batches.iter().map(|b| b.client_id).collect();
    let tzs = client_timezones(state, tz_cache, &clients).await?;
    let mut pending = Vec::with_capacity(batches.iter().map(|b| b.events.len()).sum());
    for b in batches {
        let Some(tz) = tzs.get(&b.client_id) else {
            // The client was deleted: nothing of it is counted any more.
            continue;
        };
        for e in &b.events {
            pending.push(Pending {
                batch_id: b.batch_id,
                likely_new: !b.seen_before,
                row: ChEvent {
                    client_id: b.client_id,
                    event_id: e.event_id,
                    member_id: b.member_id,
                    class_id: e.class_id.clone(),
                    category: catalogue
                        .get(&e.class_id)
                        .map(|c| c.category.clone())
                        .unwrap_or_else(|| "Uncategorised".into()),
                    started_at: e.started_at,
                    local_date: e.started_at.with_timezone(tz).date_naive(),
                    watched_seconds: e.watched_seconds,
                    received_at: b.received_at,
                },
            });
        }
    }
    if pending.is_empty() {
        return Ok(Flushed::default());
    }

    pipeline::land_pending(&state.db, &state.ch, &pending).await
}
