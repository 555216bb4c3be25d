//! The receipt ledger that makes every watch event count once: one receipt per (client, event),
//! one `landed_watch_batches` row per batch whose events are counted, and the member activity
//! summaries a landing adds to. The steps and their order are in [`crate::pipeline`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::ids::{BatchId, ClientId, MemberId};
use crate::error::AppResult;

/// How many of these events of `client_id` are already counted (or being counted).
pub async fn already_received(
    pool: &PgPool,
    client_id: ClientId,
    ids: &[Uuid],
) -> AppResult<usize> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM watch_event_receipts
           WHERE client_id = $1 AND event_id = ANY($2)"#,
        client_id as ClientId,
        ids,
    )
    .fetch_one(pool)
    .await?;
    Ok(n as usize)
}

/// The outcome of claiming: events this flush owns (`fresh` were never seen before; `resumed`
/// belong to an earlier, interrupted delivery of the same batch and may already be in ClickHouse).
#[derive(Debug, Default)]
pub struct Claim {
    pub fresh: HashSet<(ClientId, Uuid)>,
    pub resumed: HashSet<(ClientId, Uuid)>,
}

/// Claims events, given as `(client, event, batch)` keys in key order without repeats, by inserting
/// their receipts; the first claim of an event wins. Events whose receipt already exists are owned
/// only when it is of the same batch and that batch has not landed (a redelivery resuming an
/// interrupted flush).
///
/// Large flushes are claimed in parallel chunks, each in key order (so two workers claiming the
/// same events cannot deadlock). A chunk is its own statement: after a failure some chunks may be
/// committed, which the retry finds as its own pending receipts (resumed), as after a crash.
pub async fn claim(pool: &PgPool, keyed: &[(ClientId, Uuid, BatchId)]) -> AppResult<Claim> {
    let chunk = keyed.len().div_ceil(CLAIM_CHUNKS).max(CLAIM_CHUNK_MIN_ROWS);
    let parts =
        futures::future::try_join_all(keyed.chunks(chunk).map(|c| claim_chunk(pool, c))).await?;
    let mut out = Claim::default();
    for c in parts {
        out.fresh.extend(c.fresh);
        out.resumed.extend(c.resumed);
    }
    Ok(out)
}

/// Parallel statements one claim is split into at most…
const CLAIM_CHUNKS: usize = 4;
/// …each of at least this many rows.
const CLAIM_CHUNK_MIN_ROWS: usize = 5_000;

async fn claim_chunk(pool: &PgPool, keyed: &[(ClientId, Uuid, BatchId)]) -> AppResult<Claim> {
    let clients: Vec<ClientId> = keyed.iter().map(|k| k.0).collect();
    let ids: Vec<Uuid> = keyed.iter().map(|k| k.1).collect();
    let batches: Vec<BatchId> = keyed.iter().map(|k| k.2).collect();
    let fresh = sqlx::query!(
        r#"INSERT INTO watch_event_receipts (client_id, event_id, batch_id)
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[])
           ON CONFLICT (client_id, event_id) DO NOTHING
           RETURNING client_id AS "client_id: ClientId", event_id"#,
        &clients[..] as &[ClientId],
        &ids[..],
        &batches[..] as &[BatchId],
    )
    .fetch_all(pool)
    .await?;
    let mut c = Claim {
        fresh: fresh
            .into_iter()
            .map(|r| (r.client_id, r.event_id))
            .collect(),
        resumed: HashSet::new(),
    };
    if c.fresh.len() < clients.len() {
        let (mut rc, mut ri, mut rb) = (Vec::new(), Vec::new(), Vec::new());
        for ((client, id), batch) in clients.iter().zip(&ids).zip(&batches) {
            if !c.fresh.contains(&(*client, *id)) {
                rc.push(*client);
                ri.push(*id);
                rb.push(*batch);
            }
        }
        let resumed = sqlx::query!(
            r#"SELECT r.client_id AS "client_id!: ClientId", r.event_id AS "event_id!"
               FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS t(client_id, event_id, batch_id)
               JOIN watch_event_receipts r
                 ON r.client_id = t.client_id AND r.event_id = t.event_id AND r.batch_id = t.batch_id
               WHERE NOT EXISTS (SELECT 1 FROM landed_watch_batches l WHERE l.batch_id = r.batch_id)"#,
            &rc[..] as &[ClientId],
            &ri[..],
            &rb[..] as &[BatchId],
        )
        .fetch_all(pool)
        .await?;
        c.resumed = resumed
            .into_iter()
            .map(|r| (r.client_id, r.event_id))
            .collect();
    }
    Ok(c)
}

/// Inserts a `landed_watch_batches` row for every one of `batch_ids` (sorted and without repeats,
/// so landers whose batches overlap cannot deadlock) and returns the batches this transaction now
/// owns. Waits while another open landing holds one of them; a batch whose landing committed is
/// not returned.
pub async fn own_batches(
    tx: &mut Transaction<'static, Postgres>,
    batch_ids: &[BatchId],
) -> AppResult<HashSet<BatchId>> {
    let owned = sqlx::query_scalar!(
        r#"INSERT INTO landed_watch_batches (batch_id)
           SELECT b FROM UNNEST($1::uuid[]) AS b ORDER BY b
           ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id AS "batch_id: BatchId""#,
        batch_ids as &[BatchId],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(owned.into_iter().collect())
}

/// What a landing adds to one member's activity summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub client_id: ClientId,
    pub member_id: MemberId,
    pub seconds: i64,
    pub views: i64,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

/// Active days and favourite category of a member, recomputed from ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub client_id: ClientId,
    pub member_id: MemberId,
    pub active_days: i32,
    pub favorite_category: Option<String>,
}

/// Adds `activity` to the member summaries and sets the recomputed `profiles`, inside the
/// transaction that owns the batches (its commit lands them).
pub async fn count_landed(
    tx: &mut Transaction<'static, Postgres>,
    activity: &[Activity],
    profiles: &[Profile],
) -> AppResult<()> {
    if !activity.is_empty() {
        let c: Vec<ClientId> = activity.iter().map(|a| a.client_id).collect();
        let m: Vec<MemberId> = activity.iter().map(|a| a.member_id).collect();
        let s: Vec<i64> = activity.iter().map(|a| a.seconds).collect();
        let v: Vec<i64> = activity.iter().map(|a| a.views).collect();
        let f: Vec<Option<DateTime<Utc>>> = activity.iter().map(|a| a.first).collect();
        let l: Vec<Option<DateTime<Utc>>> = activity.iter().map(|a| a.last).collect();
        sqlx::query!(
            "UPDATE members m SET
                 watch_seconds = m.watch_seconds + d.seconds,
                 class_views = m.class_views + d.views,
                 first_active_at = LEAST(m.first_active_at, d.first_at),
                 last_active_at = GREATEST(m.last_active_at, d.last_at),
                 updated_at = now()
             FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[])
                  AS d(client_id, member_id, seconds, views, first_at, last_at)
             WHERE m.id = d.member_id AND m.client_id = d.client_id",
            &c[..] as &[ClientId],
            &m[..] as &[MemberId],
            &s[..],
            &v[..],
            &f[..] as &[Option<DateTime<Utc>>],
            &l[..] as &[Option<DateTime<Utc>>],
        )
        .execute(&mut **tx)
        .await?;
    }
    if !profiles.is_empty() {
        let c: Vec<ClientId> = profiles.iter().map(|p| p.client_id).collect();
        let m: Vec<MemberId> = profiles.iter().map(|p| p.member_id).collect();
        let d: Vec<i32> = profiles.iter().map(|p| p.active_days).collect();
        let f: Vec<Option<String>> = profiles
            .iter()
            .map(|p| p.favorite_category.clone())
            .collect();
        sqlx::query!(
            "UPDATE members m SET active_days = d.days, favorite_category = d.category
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int[], $4::text[]) AS d(client_id, id, days, category)
             WHERE m.client_id = d.client_id AND m.id = d.id",
            &c[..] as &[ClientId],
            &m[..] as &[MemberId],
            &d[..],
            &f[..] as &[Option<String>],
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Locks the rows of `members` (any order, repeats allowed) in id order, inside the landing's
/// transaction. Landings run side by side (several per worker, several workers) and each updates
/// the summaries of the members it counts: taking those locks first and in one global order means
/// two landings that share members wait for each other instead of deadlocking.
pub async fn lock_members(
    tx: &mut Transaction<'static, Postgres>,
    members: &[(ClientId, MemberId)],
) -> AppResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let c: Vec<ClientId> = members.iter().map(|m| m.0).collect();
    let m: Vec<MemberId> = members.iter().map(|m| m.1).collect();
    sqlx::query!(
        "SELECT m.id FROM members m
         JOIN UNNEST($1::uuid[], $2::uuid[]) AS d(client_id, id)
           ON m.client_id = d.client_id AND m.id = d.id
         ORDER BY m.id FOR UPDATE OF m",
        &c[..] as &[ClientId],
        &m[..] as &[MemberId],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(())
}

/// Receipts older than 35 days are no longer needed (events that old are refused). A sweep over
/// every client (listed in [`unscoped`](crate::pg::unscoped)).
pub async fn prune(pool: &PgPool) -> AppResult<u64> {
    let receipts = sqlx::query!(
        "DELETE FROM watch_event_receipts WHERE received_at < now() - interval '35 days'"
    )
    .execute(pool)
    .await?
    .rows_affected();
    sqlx::query!("DELETE FROM landed_watch_batches WHERE landed_at < now() - interval '35 days'")
        .execute(pool)
        .await?;
    Ok(receipts)
}
