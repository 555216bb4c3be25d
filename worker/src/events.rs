//! Watch-event consumer. Each apalis task (one API batch) hands its events to an in-process
//! buffer and waits; the flusher lands the buffer when it holds `EVENTS_FLUSH_ROWS` rows or its
//! oldest row has waited `EVENTS_FLUSH_MS`, then answers every waiting task. A task is
//! acknowledged only after its events are in ClickHouse and counted in Postgres, so a crash at any
//! point leaves it on the queue, and the receipt ledger makes the retry count nothing twice:
//!
//! 1. claim: insert receipts (first claim of an event wins; a redelivered batch resumes its own
//!    pending receipts);
//! 2. insert the claimed events into ClickHouse in one INSERT (for resumed events, only those
//!    not already there);
//! 3. recompute the affected members' active days and favourite category from ClickHouse;
//! 4. land: record the batches as landed, add their events to member summaries and store the
//!    recomputed fields, in one transaction.
//!
//! While Postgres or ClickHouse is unreachable the flusher keeps retrying with backoff; tasks stay
//! in flight (their worker keeps heartbeating), and nothing is acknowledged until it lands.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use apalis::prelude::*;
use chrono::Utc;
use moka::future::Cache;
use portal_shared::analytics;
use portal_shared::error::AppError;
use portal_shared::events::{self, ChEvent, Pending, WatchBatch};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::WorkerState;

type Reply = oneshot::Sender<Result<usize, String>>;

/// Handle that apalis tasks use to reach the flusher.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<(WatchBatch, Reply)>,
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub rows_inserted: usize,
    pub events_counted: usize,
}

pub fn start(
    state: WorkerState,
    stop: watch::Receiver<bool>,
) -> (Ingest, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(state.config.events_concurrency.max(1) * 2);
    let handle = tokio::spawn(flusher(state, rx, stop));
    (Ingest { tx }, handle)
}

/// The apalis handler: waits until the batch has landed.
pub async fn handle(batch: WatchBatch, ingest: Data<Ingest>) -> Result<(), BoxDynError> {
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

async fn flusher(
    state: WorkerState,
    mut rx: mpsc::Receiver<(WatchBatch, Reply)>,
    mut stop: watch::Receiver<bool>,
) {
    let tz_cache: Cache<Uuid, chrono_tz::Tz> = Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(60))
        .build();
    let max_rows = state.config.events_flush_rows;
    let max_wait = state.config.events_flush_interval;
    loop {
        let first = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut items = vec![first];
        let mut rows = items[0].0.events.len();
        let deadline = tokio::time::Instant::now() + max_wait;
        while rows < max_rows {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(i) => { rows += i.0.events.len(); items.push(i); }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let batches: Vec<&WatchBatch> = items.iter().map(|(b, _)| b).collect();
        let result = flush_with_retry(&state, &tz_cache, &batches, &mut stop).await;
        match result {
            Ok(f) => {
                metrics::counter!("portal_events_landed_total").increment(f.events_counted as u64);
                metrics::counter!("portal_jobs_total", "queue" => events::EVENTS_QUEUE, "outcome" => "done")
                    .increment(items.len() as u64);
                for (_, reply) in items {
                    let _ = reply.send(Ok(f.events_counted));
                }
            }
            Err(e) => {
                metrics::counter!("portal_jobs_total", "queue" => events::EVENTS_QUEUE, "outcome" => "retry")
                    .increment(items.len() as u64);
                for (_, reply) in items {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
    // Stopping: tasks still waiting in the channel are answered with an error, so apalis puts
    // them back on the queue.
    rx.close();
    while let Some((_, reply)) = rx.recv().await {
        let _ = reply.send(Err("worker stopping".into()));
    }
}

async fn flush_with_retry(
    state: &WorkerState,
    tz_cache: &Cache<Uuid, chrono_tz::Tz>,
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
    cache: &Cache<Uuid, chrono_tz::Tz>,
    clients: &HashSet<Uuid>,
) -> Result<HashMap<Uuid, chrono_tz::Tz>, AppError> {
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
        let rows: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, timezone FROM clients WHERE id = ANY($1)")
                .bind(&missing)
                .fetch_all(&state.db)
                .await?;
        for (id, tz) in rows {
            let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
            cache.insert(id, tz).await;
            out.insert(id, tz);
        }
    }
    Ok(out)
}

/// One attempt at landing `batches`. Safe to repeat: every step is idempotent.
pub async fn flush(
    state: &WorkerState,
    tz_cache: &Cache<Uuid, chrono_tz::Tz>,
    batches: &[&WatchBatch],
) -> Result<Flushed, AppError> {
    let catalogue = state.catalogue.get(&state.db).await?;
    let clients: HashSet<Uuid> = batches.iter().map(|b| b.client_id).collect();
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

    let t0 = std::time::Instant::now();
    // 1. Claim.
    let claim = events::claim(&state.db, &pending).await?;
    let t_claim = t0.elapsed();
    // 2. Insert what is not in ClickHouse yet.
    let mut already: HashSet<(Uuid, Uuid)> = HashSet::new();
    if !claim.resumed.is_empty() {
        let mut by_client: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for (c, e) in &claim.resumed {
            by_client.entry(*c).or_default().push(*e);
        }
        for (c, ids) in by_client {
            for chunk in ids.chunks(5000) {
                for e in analytics::existing_events(&state.ch, c, chunk).await? {
                    already.insert((c, e));
                }
            }
        }
    }
    let mut owned: Vec<(&Uuid, &ChEvent)> = Vec::with_capacity(pending.len());
    let mut seen = HashSet::with_capacity(pending.len());
    for p in &pending {
        let key = (p.row.client_id, p.row.event_id);
        if (claim.fresh.contains(&key) || claim.resumed.contains(&key)) && seen.insert(key) {
            owned.push((&p.batch_id, &p.row));
        }
    }
    let to_insert: Vec<&ChEvent> = owned
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| !already.contains(&(r.client_id, r.event_id)))
        .collect();
    if !to_insert.is_empty() {
        let mut insert = state.ch.client.insert::<ChEvent>("watch_events").await?;
        for r in &to_insert {
            insert.write(r).await?;
        }
        insert.end().await?;
    }
    let t_insert = t0.elapsed();
    // 3. Derived member profile fields, from what ClickHouse now holds.
    let mut members_by_client: HashMap<Uuid, HashSet<Uuid>> = HashMap::new();
    for (_, r) in &owned {
        members_by_client
            .entry(r.client_id)
            .or_default()
            .insert(r.member_id);
    }
    let mut profiles = Vec::new();
    for (client, members) in members_by_client {
        let members: Vec<Uuid> = members.into_iter().collect();
        for chunk in members.chunks(5000) {
            for (member_id, active_days, favorite_category) in
                analytics::member_profiles(&state.ch, client, chunk).await?
            {
                profiles.push(events::Profile {
                    client_id: client,
                    member_id,
                    active_days,
                    favorite_category,
                });
            }
        }
    }
    let t_profiles = t0.elapsed();
    // 4. Land and count, with the profiles, in one transaction.
    let counted = events::land(&state.db, &owned, &profiles).await?;
    let t_land = t0.elapsed();
    metrics::histogram!("portal_events_flush_seconds").record(t_land.as_secs_f64());
    tracing::debug!(
        rows = pending.len(),
        claim_ms = t_claim.as_millis() as u64,
        insert_ms = (t_insert - t_claim).as_millis() as u64,
        profiles_ms = (t_profiles - t_insert).as_millis() as u64,
        land_ms = (t_land - t_profiles).as_millis() as u64,
        "flush timings"
    );
    tracing::debug!(rows = to_insert.len(), counted, at = %Utc::now(), "watch events landed");
    Ok(Flushed {
        rows_inserted: to_insert.len(),
        events_counted: counted,
    })
}
