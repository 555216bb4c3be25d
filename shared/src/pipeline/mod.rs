//! The watch-event path: what the app sends and how a batch is validated, the job that carries
//! it from the API to a worker, and [`land_pending`], which counts every event exactly once
//! (with the receipt ledger in [`crate::pg::receipts`] and the row in [`crate::ch::events`]).

use std::collections::HashMap;

// The per-event sets and maps: foldhash (seeded per process) instead of std's SipHash.
use foldhash::{HashMap as EventMap, HashMapExt, HashSet, HashSetExt};

use crate::domain::ids::{BatchId, ClientId, MemberId};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

pub use crate::ch::events::ChEvent;
use crate::error::{AppError, AppResult, FieldError};
use crate::pg::classes::ClassInfo;
use crate::pg::receipts::{self, Activity, Claim};

mod packed;
mod profile;

pub const EVENTS_QUEUE: &str = "watch-events";
pub const MAX_BATCH: usize = 500;
/// Events that started longer ago than this are refused: the receipt ledger (kept 35 days)
/// always covers every event the API accepts.
pub const MAX_AGE_DAYS: i64 = 30;
/// Clock skew tolerated for events "from the future".
pub const MAX_SKEW_SECS: i64 = 300;
pub const MAX_WATCHED_SECONDS: i64 = 24 * 3600;
/// A view may not last longer than the time since it started plus this (clock skew, rounding).
pub const WATCH_SLACK_SECS: i64 = 60;
/// …nor longer than this many times the class's duration (replays, a paused player).
pub const MAX_DURATION_FACTOR: i64 = 4;

/// One event as queued (validated by the API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchEvent {
    pub event_id: Uuid,
    pub class_id: String,
    pub started_at: DateTime<Utc>,
    pub watched_seconds: u32,
}

/// The job: one accepted API batch. `batch_id` ties its receipts together across redeliveries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WatchBatch {
    pub batch_id: BatchId,
    pub client_id: ClientId,
    pub member_id: MemberId,
    pub received_at: DateTime<Utc>,
    /// Queued as one string of fixed-layout records ([`packed`]).
    #[serde(with = "packed")]
    pub events: Vec<WatchEvent>,
    /// Some of the events had a receipt when the API accepted the batch (they are repeats). Only
    /// a hint for how the worker claims them (see [`Pending::likely_new`]); jobs queued without
    /// it are taken to have repeats.
    #[serde(default = "seen_before_unknown")]
    pub seen_before: bool,
}

fn seen_before_unknown() -> bool {
    true
}

/// A watch-events job as a worker reads it: the batch, or the payload as it is when this release
/// cannot read it as one (queued by a later release in a layout this one does not know, or
/// damaged in Redis). On the queue it is the same JSON as [`WatchBatch`], which the API queues.
///
/// Without the second case apalis fails to decode such a job inside its fetch, and the failure
/// stops the consumer: one unreadable job would halt every landing of the worker, and of every
/// worker that fetched it after. With it, the consumer answers the job with an error, apalis runs
/// it again later (with a growing delay) and, after its 25th run, keeps it in the queue's dead
/// set, where the operators' alert on dead watch-events jobs finds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueuedBatch {
    Batch(WatchBatch),
    Unreadable(serde_json::Value),
}

impl QueuedBatch {
    /// The batch, or why this release cannot read the payload as one.
    pub fn into_batch(self) -> Result<WatchBatch, String> {
        match self {
            QueuedBatch::Batch(b) => Ok(b),
            QueuedBatch::Unreadable(v) => serde_json::from_value(v)
                .map_err(|e| format!("a watch-events job this worker cannot read: {e}")),
        }
    }
}

/// Validates a raw `{"events": [...]}` body. The batch is accepted whole or not at all: every
/// invalid event is reported with its index and reason. Returns the unique events and how many
/// repeated an `eventId` of an earlier event in the same batch.
///
/// Beyond the shape, a view must be plausible: `watchedSeconds` at most the time since
/// `startedAt` plus [`WATCH_SLACK_SECS`], and at most [`MAX_DURATION_FACTOR`] × the class's duration.
pub fn validate_batch(
    body: &serde_json::Value,
    classes: &HashMap<String, ClassInfo>,
    now: DateTime<Utc>,
) -> AppResult<(Vec<WatchEvent>, usize)> {
    let Some(events) = body.get("events").and_then(|e| e.as_array()) else {
        return Err(AppError::validation(
            "events",
            "must be an array of 1 to 500 events",
        ));
    };
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(AppError::validation(
            "events",
            format!("must hold 1 to {MAX_BATCH} events (got {})", events.len()),
        ));
    }
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    let mut seen = HashSet::with_capacity(events.len());
    let mut duplicates = 0;
    for (i, e) in events.iter().enumerate() {
        let field = |name: &str| format!("events[{i}].{name}");
        let Some(obj) = e.as_object() else {
            errors.push(FieldError::new(format!("events[{i}]"), "must be an object"));
            continue;
        };
        let before = errors.len();
        let event_id = match obj
            .get("eventId")
            .and_then(|v| v.as_str())
            .map(Uuid::parse_str)
        {
            Some(Ok(id)) => Some(id),
            _ => {
                errors.push(FieldError::new(field("eventId"), "must be a UUID"));
                None
            }
        };
        let class_id = match obj.get("classId").and_then(|v| v.as_str()) {
            Some(c) if classes.contains_key(c) => Some(c.to_string()),
            Some(_) => {
                errors.push(FieldError::new(
                    field("classId"),
                    "is not a class of the catalogue",
                ));
                None
            }
            None => {
                errors.push(FieldError::new(field("classId"), "must be a string"));
                None
            }
        };
        let started_at = match obj
            .get("startedAt")
            .and_then(|v| v.as_str())
            .map(DateTime::parse_from_rfc3339)
        {
            Some(Ok(t)) => {
                let t = t.with_timezone(&Utc);
                if t > now + ChronoDuration::seconds(MAX_SKEW_SECS) {
                    errors.push(FieldError::new(field("startedAt"), "is in the future"));
                    None
                } else if t < now - ChronoDuration::days(MAX_AGE_DAYS) {
                    errors.push(FieldError::new(
                        field("startedAt"),
                        format!("is more than {MAX_AGE_DAYS} days ago"),
                    ));
                    None
                } else {
                    Some(t)
                }
            }
            _ => {
                errors.push(FieldError::new(
                    field("startedAt"),
                    "must be an RFC 3339 timestamp such as 2026-11-25T07:30:00Z",
                ));
                None
            }
        };
        let watched = match obj
            .get("watchedSeconds")
            .and_then(crate::domain::json::whole_number)
        {
            Some(s) if (1..=MAX_WATCHED_SECONDS).contains(&s) => Some(s as u32),
            _ => {
                errors.push(FieldError::new(
                    field("watchedSeconds"),
                    format!("must be a whole number from 1 to {MAX_WATCHED_SECONDS}"),
                ));
                None
            }
        };
        if let (Some(class), Some(started_at), Some(watched)) = (
            class_id.as_ref().and_then(|c| classes.get(c)),
            started_at,
            watched,
        ) {
            if let Some(reason) = implausible(class, started_at, watched, now) {
                errors.push(FieldError::new(field("watchedSeconds"), reason));
            }
        }
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["eventId", "classId", "startedAt", "watchedSeconds"].contains(&k.as_str()))
        {
            errors.push(FieldError::new(field(unknown), "is not an event field"));
        }
        if errors.len() > before {
            continue;
        }
        if let (Some(event_id), Some(class_id), Some(started_at), Some(watched_seconds)) =
            (event_id, class_id, started_at, watched)
        {
            if seen.insert(event_id) {
                out.push(WatchEvent {
                    event_id,
                    class_id,
                    started_at,
                    watched_seconds,
                });
            } else {
                duplicates += 1;
            }
        }
    }
    if errors.is_empty() {
        Ok((out, duplicates))
    } else {
        Err(AppError::validation_many(errors))
    }
}

/// A `POST /app/events` body read straight into its types, without building a JSON tree: the
/// shape of every well-formed batch. Anything else (a missing or extra field, a number where a
/// string belongs, an escaped id) fails to read this way and is read as JSON for
/// [`validate_batch`], which reports it.
#[derive(Debug, Deserialize)]
pub struct TypedBatch {
    pub events: Vec<TypedEvent>,
}

/// One event of a [`TypedBatch`]: the id and the start as text (as [`validate_batch`] reads them).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TypedEvent {
    #[serde(deserialize_with = "uuid_text")]
    pub event_id: Uuid,
    pub class_id: String,
    #[serde(deserialize_with = "rfc3339_text")]
    pub started_at: DateTime<Utc>,
    pub watched_seconds: u32,
}

fn uuid_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let s = <&str>::deserialize(d)?;
    Uuid::parse_str(s).map_err(serde::de::Error::custom)
}

fn rfc3339_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = <&str>::deserialize(d)?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

/// [`validate_batch`] for a batch read as a [`TypedBatch`]: the same unique events and in-batch
/// repeats when every event is valid, `None` as soon as one is not (then the body is read as JSON
/// and [`validate_batch`] names every invalid event).
pub fn validate_typed(
    batch: TypedBatch,
    classes: &HashMap<String, ClassInfo>,
    now: DateTime<Utc>,
) -> Option<(Vec<WatchEvent>, usize)> {
    let events = batch.events;
    if events.is_empty() || events.len() > MAX_BATCH {
        return None;
    }
    let earliest = now - ChronoDuration::days(MAX_AGE_DAYS);
    let latest = now + ChronoDuration::seconds(MAX_SKEW_SECS);
    let mut out = Vec::with_capacity(events.len());
    let mut seen = HashSet::with_capacity(events.len());
    let mut duplicates = 0;
    for e in events {
        let class = classes.get(&e.class_id)?;
        if e.started_at > latest
            || e.started_at < earliest
            || !(1..=MAX_WATCHED_SECONDS).contains(&i64::from(e.watched_seconds))
            || implausible(class, e.started_at, e.watched_seconds, now).is_some()
        {
            return None;
        }
        if seen.insert(e.event_id) {
            out.push(WatchEvent {
                event_id: e.event_id,
                class_id: e.class_id,
                started_at: e.started_at,
                watched_seconds: e.watched_seconds,
            });
        } else {
            duplicates += 1;
        }
    }
    Some((out, duplicates))
}

/// Why a view of `class` that started at `started_at` cannot have lasted `watched` seconds by
/// `now`, if it cannot.
fn implausible(
    class: &ClassInfo,
    started_at: DateTime<Utc>,
    watched: u32,
    now: DateTime<Utc>,
) -> Option<String> {
    let watched = i64::from(watched);
    let since_start = (now - started_at).num_seconds();
    if watched > since_start + WATCH_SLACK_SECS {
        return Some(format!(
            "must not exceed the time since startedAt plus {WATCH_SLACK_SECS} s ({} s here)",
            (since_start + WATCH_SLACK_SECS).max(0)
        ));
    }
    let most = MAX_DURATION_FACTOR * i64::from(class.duration_minutes) * 60;
    if watched > most {
        return Some(format!(
            "must not exceed {MAX_DURATION_FACTOR} × the class's duration ({most} s)"
        ));
    }
    None
}

/// Claims the receipts of `pending` (see [`receipts::claim`]). The first delivery of an event wins
/// within one flush, as it does across flushes.
pub async fn claim(pool: &PgPool, events: &[Pending]) -> AppResult<Claim> {
    let mut seen = HashSet::with_capacity(events.len());
    let (mut likely_new, mut others) = (Vec::new(), Vec::new());
    for p in events {
        if seen.insert((p.row.client_id, p.row.event_id)) {
            let key = (p.row.client_id, p.row.event_id, p.batch_id);
            if p.likely_new {
                likely_new.push(key);
            } else {
                others.push(key);
            }
        }
    }
    likely_new.sort_unstable();
    others.sort_unstable();
    receipts::claim(pool, &likely_new, &others).await
}

/// One event a worker is about to land, with the batch it came in.
#[derive(Debug, Clone)]
pub struct Pending {
    pub batch_id: BatchId,
    /// The API found none of the batch's events in the ledger when it accepted it (see
    /// [`WatchBatch::seen_before`]): its receipts are claimed with the cheaper statement first.
    pub likely_new: bool,
    pub row: ChEvent,
}

/// What one landing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    pub rows_inserted: usize,
    pub events_counted: usize,
    /// The clients whose events this landing counted (each once): their dashboard, analytics,
    /// funnel, billing and member-list answers changed when it committed. The caller announces
    /// them ([`crate::announce`]).
    pub clients: Vec<ClientId>,
}

/// Landings of one process claim their receipts one at a time (each landing's chunks still run in
/// parallel). A claim is cut into chunks of contiguous key ranges, so its statements insert into
/// different leaf pages of the ledger's index; two landings' claims at once meet on the same pages
/// and cost Postgres more per receipt (concurrent page splits: `_bt_moveright`, `_bt_checkpage` in
/// `perf`). Measured in alternating runs of `portal-bench`: the drain 3 % faster, end to end no
/// slower (see the ARCHITECTURE document's benchmarks). No deadlock: a claim's statements wait on
/// no lock another landing of the process holds.
static CLAIM_TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Lands `pending` events exactly once: own their batches, claim their receipts, insert what
/// ClickHouse does not hold yet, lock the touched members and gather what the events add to their
/// profile state, then count them (see `worker/src/events.rs`). Safe to repeat, and safe to run
/// twice at once on the same batch.
///
/// Owning: one `landed_watch_batches` row per batch is inserted in a transaction that stays open
/// until the batch is counted. A second lander of the same batch (a redelivery while the first
/// still runs) waits on that row; when the first commits, the batch is landed and the second
/// leaves it alone; if the first fails or dies, its transaction rolls back and the second owns the
/// batch and resumes it. So one lander at a time asks ClickHouse what it holds and inserts. Owning
/// runs beside the claim (it only has to come before the ClickHouse step): claiming the receipts
/// of a batch someone else lands changes nothing, since that lander claimed them first.
///
/// Profiles: active days and favourite category follow from per-member state in Postgres
/// (distinct days, seconds per category) that the counting adds the flush's events to, so a flush
/// reads no history from ClickHouse. The exception is once per member counted before that state
/// existed: their state is rebuilt from ClickHouse under their row lock (see `pipeline/profile.rs`).
pub async fn land_pending(
    db: &PgPool,
    ch: &crate::ch::ClickHouse,
    pending: &[Pending],
) -> AppResult<Flushed> {
    if pending.is_empty() {
        return Ok(Flushed::default());
    }
    let t0 = std::time::Instant::now();
    // 0. Own the batches, and 1. claim the receipts, at once.
    let mut tx = db.begin().await?;
    let claimed = async {
        let _turn = CLAIM_TURN.acquire().await;
        claim(db, pending).await
    };
    let ((owned, batches), claimed) = tokio::try_join!(own_batches(&mut tx, pending), claimed)?;
    if owned.is_empty() {
        tx.commit().await?;
        tracing::debug!(batches, "watch batches already landed by another delivery");
        return Ok(Flushed::default());
    }
    let t_claim = t0.elapsed();
    // 2. Insert what is not in ClickHouse yet.
    let mut already: HashSet<(ClientId, Uuid)> = HashSet::new();
    if !claimed.resumed.is_empty() {
        let mut by_client: EventMap<ClientId, Vec<Uuid>> = EventMap::new();
        for (c, e) in &claimed.resumed {
            by_client.entry(*c).or_default().push(*e);
        }
        for (c, ids) in by_client {
            for chunk in ids.chunks(5000) {
                for e in crate::ch::events::existing(ch, c, chunk).await? {
                    already.insert((c, e));
                }
            }
        }
    }
    let mut counted_rows: Vec<&ChEvent> = Vec::with_capacity(pending.len());
    let mut seen = HashSet::with_capacity(pending.len());
    for p in pending {
        let key = (p.row.client_id, p.row.event_id);
        if owned.contains(&p.batch_id)
            && (claimed.fresh.contains(&key) || claimed.resumed.contains(&key))
            && seen.insert(key)
        {
            counted_rows.push(&p.row);
        }
    }
    let to_insert: Vec<&ChEvent> = counted_rows
        .iter()
        .copied()
        .filter(|r| !already.contains(&(r.client_id, r.event_id)))
        .collect();
    crate::ch::events::insert(ch, &to_insert).await?;
    let t_insert = t0.elapsed();
    // 3. Lock the touched members, and gather what the flush adds to their profile state.
    let profiles = profile::prepare(&mut tx, ch, &counted_rows).await?;
    let t_profile = t0.elapsed();
    let mut clients: Vec<ClientId> = counted_rows.iter().map(|r| r.client_id).collect();
    clients.sort_unstable();
    clients.dedup();
    // 4. Count, with the profiles, in the owning transaction; its commit lands the batches.
    let counted = land(&mut tx, &counted_rows, &profiles).await?;
    tx.commit().await?;
    let t_land = t0.elapsed();
    metrics::histogram!("portal_events_flush_seconds").record(t_land.as_secs_f64());
    tracing::debug!(
        rows = pending.len(),
        claim_ms = t_claim.as_millis() as u64,
        insert_ms = (t_insert - t_claim).as_millis() as u64,
        profile_ms = (t_profile - t_insert).as_millis() as u64,
        rebuilt = profiles.rebuilt.len(),
        land_ms = (t_land - t_profile).as_millis() as u64,
        "flush timings"
    );
    tracing::debug!(rows = to_insert.len(), counted, at = %Utc::now(), "watch events landed");
    Ok(Flushed {
        rows_inserted: to_insert.len(),
        events_counted: counted,
        clients,
    })
}

/// Owns the batches of `pending` (see [`receipts::own_batches`]); returns those owned and how many
/// batches there were.
async fn own_batches(
    tx: &mut Transaction<'static, Postgres>,
    pending: &[Pending],
) -> AppResult<(HashSet<BatchId>, usize)> {
    let mut batch_ids: Vec<BatchId> = pending.iter().map(|p| p.batch_id).collect();
    batch_ids.sort_unstable();
    batch_ids.dedup();
    Ok((
        receipts::own_batches(tx, &batch_ids).await?,
        batch_ids.len(),
    ))
}

/// Adds the events of owned batches to the member activity summaries and `profiles` to the
/// members' profile state (which sets their active days and favourite category), inside the
/// transaction that owns the batches (its commit lands them). Returns the events counted.
async fn land(
    tx: &mut Transaction<'static, Postgres>,
    events: &[&ChEvent],
    profiles: &profile::Profiles,
) -> AppResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut per_member: EventMap<(ClientId, MemberId), Activity> = EventMap::new();
    for e in events {
        let a = per_member
            .entry((e.client_id, e.member_id))
            .or_insert_with(|| Activity {
                client_id: e.client_id,
                member_id: e.member_id,
                seconds: 0,
                views: 0,
                first: None,
                last: None,
                rebuilt: profiles.rebuilt.contains(&(e.client_id, e.member_id)),
            });
        a.seconds += i64::from(e.watched_seconds);
        a.views += 1;
        a.first = Some(a.first.map_or(e.started_at, |f| f.min(e.started_at)));
        a.last = Some(a.last.map_or(e.started_at, |l| l.max(e.started_at)));
    }
    let activity: Vec<Activity> = per_member.into_values().collect();
    receipts::count_landed(tx, &activity, &profiles.adds).await?;
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn catalogue() -> HashMap<String, ClassInfo> {
        [(
            "yoga-1".to_string(),
            ClassInfo {
                title: "Flow".into(),
                category: "Yoga".into(),
                duration_minutes: 30,
            },
        )]
        .into_iter()
        .collect()
    }

    #[test]
    fn valid_batches_dedupe_repeated_ids() {
        let now = Utc::now();
        let id = Uuid::new_v4();
        let ev = json!({"eventId": id, "classId": "yoga-1", "startedAt": (now - ChronoDuration::hours(1)).to_rfc3339(), "watchedSeconds": 1200});
        let (events, dups) =
            validate_batch(&json!({"events": [ev.clone(), ev]}), &catalogue(), now).unwrap();
        assert_eq!((events.len(), dups), (1, 1));
    }

    #[test]
    fn every_bad_event_is_reported_with_its_index() {
        let now = Utc::now();
        let good = json!({"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": now.to_rfc3339(), "watchedSeconds": 60});
        let body = json!({"events": [
            good,
            {"eventId": "nope", "classId": "yoga-1", "startedAt": now.to_rfc3339(), "watchedSeconds": 60},
            {"eventId": Uuid::new_v4(), "classId": "unknown", "startedAt": now.to_rfc3339(), "watchedSeconds": 60},
            {"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": (now + ChronoDuration::hours(1)).to_rfc3339(), "watchedSeconds": 60},
            {"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": (now - ChronoDuration::days(31)).to_rfc3339(), "watchedSeconds": 60},
            {"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": now.to_rfc3339(), "watchedSeconds": 0},
            {"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": now.to_rfc3339(), "watchedSeconds": 60, "extra": 1},
            7
        ]});
        let e = validate_batch(&body, &catalogue(), now).unwrap_err();
        let fields: Vec<String> = e.details().iter().map(|d| d.field.clone()).collect();
        assert_eq!(
            fields,
            vec![
                "events[1].eventId",
                "events[2].classId",
                "events[3].startedAt",
                "events[4].startedAt",
                "events[5].watchedSeconds",
                "events[6].extra",
                "events[7]"
            ]
        );
        assert!(validate_batch(&json!({"events": []}), &catalogue(), now).is_err());
        assert!(
            validate_batch(&json!({"events": vec![json!({}); 501]}), &catalogue(), now).is_err()
        );
        assert!(validate_batch(&json!([1]), &catalogue(), now).is_err());
    }

    /// `validate_typed` on the body read as a `TypedBatch`, or `None` when it does not read so.
    fn typed(body: &serde_json::Value, now: DateTime<Utc>) -> Option<(Vec<WatchEvent>, usize)> {
        let batch: TypedBatch = serde_json::from_slice(&serde_json::to_vec(body).ok()?).ok()?;
        validate_typed(batch, &catalogue(), now)
    }

    #[test]
    fn the_typed_reading_agrees_with_the_json_one_and_declines_whatever_it_refuses() {
        let now = Utc::now();
        let at = |ago: i64| (now - ChronoDuration::seconds(ago)).to_rfc3339();
        let id = Uuid::new_v4();
        let ev = |id: Uuid, ago: i64, secs: i64| json!({"eventId": id, "classId": "yoga-1", "startedAt": at(ago), "watchedSeconds": secs});
        // Valid: the same events, in order, and the same in-batch repeats (fields in any order,
        // offsets other than Z, unknown fields beside `events`).
        let valid = [
            json!({"events": [ev(id, 600, 600), ev(Uuid::new_v4(), 0, 60), ev(id, 30, 20)]}),
            json!({"events": [{"watchedSeconds": 60, "startedAt": (now - ChronoDuration::hours(2)).with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap()).to_rfc3339(), "classId": "yoga-1", "eventId": id}], "app": "ios"}),
            json!({"events": (0..MAX_BATCH).map(|_| ev(Uuid::new_v4(), 7200, 3600)).collect::<Vec<_>>()}),
        ];
        for body in &valid {
            let json = validate_batch(body, &catalogue(), now).unwrap();
            assert_eq!(typed(body, now), Some(json), "{body}");
        }
        // Refused by the JSON reading: the typed one declines them all, so the JSON one reports.
        let refused = [
            json!({"events": []}),
            json!({"events": (0..=MAX_BATCH).map(|_| ev(Uuid::new_v4(), 60, 60)).collect::<Vec<_>>()}),
            json!({"events": [ev(id, 60, 0)]}),
            json!({"events": [ev(id, 60, 86_401)]}),
            json!({"events": [ev(id, 600, 661)]}),
            json!({"events": [ev(id, 10_000, 7201)]}),
            json!({"events": [ev(id, -400, 1)]}),
            json!({"events": [ev(id, 31 * 86_400, 60)]}),
            json!({"events": [{"eventId": id, "classId": "unknown", "startedAt": at(60), "watchedSeconds": 60}]}),
            json!({"events": [{"eventId": "nope", "classId": "yoga-1", "startedAt": at(60), "watchedSeconds": 60}]}),
            json!({"events": [{"eventId": id, "classId": "yoga-1", "startedAt": "yesterday", "watchedSeconds": 60}]}),
            json!({"events": [{"eventId": id, "classId": "yoga-1", "startedAt": at(60), "watchedSeconds": 60, "extra": 1}]}),
            json!({"events": [{"eventId": id, "classId": "yoga-1", "startedAt": at(60)}]}),
            json!({"events": [7]}),
            json!({"events": {}}),
            json!([1]),
        ];
        for body in &refused {
            assert!(validate_batch(body, &catalogue(), now).is_err(), "{body}");
            assert_eq!(typed(body, now), None, "{body}");
        }
        // Read as JSON instead, and valid there: a number the JSON reading takes as whole, an id
        // written with escapes. The typed reading declines; the JSON one accepts.
        let loose = [
            json!({"events": [{"eventId": id, "classId": "yoga-1", "startedAt": at(600), "watchedSeconds": 60.0}]}),
        ];
        for body in &loose {
            assert!(validate_batch(body, &catalogue(), now).is_ok(), "{body}");
            assert_eq!(typed(body, now), None, "{body}");
        }
        let escaped = format!(
            r#"{{"events": [{{"eventId": "\u0030{}", "classId": "yoga-1", "startedAt": "{}", "watchedSeconds": 60}}]}}"#,
            &Uuid::nil().to_string()[1..],
            at(600)
        );
        assert!(serde_json::from_str::<TypedBatch>(&escaped).is_err());
        let value: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(
            validate_batch(&value, &catalogue(), now).unwrap().0[0].event_id,
            Uuid::nil()
        );
    }

    #[test]
    fn a_queued_batch_reads_as_the_batch_and_anything_else_as_unreadable_with_the_reason() {
        let batch = WatchBatch {
            batch_id: BatchId::new_v7(),
            client_id: ClientId::new_v7(),
            member_id: MemberId::new_v7(),
            received_at: Utc::now(),
            events: vec![WatchEvent {
                event_id: Uuid::new_v4(),
                class_id: "yoga-1".into(),
                started_at: Utc::now(),
                watched_seconds: 60,
            }],
            seen_before: false,
        };
        let queued: QueuedBatch =
            serde_json::from_slice(&serde_json::to_vec(&batch).unwrap()).unwrap();
        assert!(matches!(&queued, QueuedBatch::Batch(b) if *b == batch));
        assert_eq!(queued.into_batch().unwrap(), batch);
        let mut later = serde_json::to_value(&batch).unwrap();
        later["events"] = json!("AgAAAA==");
        let queued: QueuedBatch = serde_json::from_value(later).unwrap();
        assert!(matches!(queued, QueuedBatch::Unreadable(_)));
        let reason = queued.into_batch().unwrap_err();
        assert!(reason.contains("cannot read"), "{reason}");
        assert!(reason.contains("layout 2"), "{reason}");
    }

    #[test]
    fn views_longer_than_their_time_or_class_are_refused() {
        let now = Utc::now();
        let ev = |ago_secs: i64, watched: i64| json!({"eventId": Uuid::new_v4(), "classId": "yoga-1", "startedAt": (now - ChronoDuration::seconds(ago_secs)).to_rfc3339(), "watchedSeconds": watched});
        // The 30-minute class: up to 7200 s; and up to the time since the start plus 60 s.
        let ok = json!({"events": [ev(600, 660), ev(0, 60), ev(10_000, 7200), ev(-30, 30)]});
        assert_eq!(validate_batch(&ok, &catalogue(), now).unwrap().0.len(), 4);
        let bad = json!({"events": [ev(600, 661), ev(10_000, 7201), ev(-120, 1), ev(10, 86_400)]});
        let e = validate_batch(&bad, &catalogue(), now).unwrap_err();
        let details: Vec<(String, String)> = e
            .details()
            .iter()
            .map(|d| (d.field.clone(), d.message.clone()))
            .collect();
        assert_eq!(
            details,
            vec![
                (
                    "events[0].watchedSeconds".into(),
                    "must not exceed the time since startedAt plus 60 s (660 s here)".into()
                ),
                (
                    "events[1].watchedSeconds".into(),
                    "must not exceed 4 × the class's duration (7200 s)".into()
                ),
                (
                    "events[2].watchedSeconds".into(),
                    "must not exceed the time since startedAt plus 60 s (0 s here)".into()
                ),
                (
                    "events[3].watchedSeconds".into(),
                    "must not exceed the time since startedAt plus 60 s (70 s here)".into()
                ),
            ]
        );
    }
}
