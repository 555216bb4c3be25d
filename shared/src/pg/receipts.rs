//! The receipt ledger that makes every watch event count once: one receipt per (client, event),
//! one `landed_watch_batches` row per batch whose events are counted, and the member activity
//! summaries and profile state (active days, watch seconds per category) a landing adds to. The
//! steps and their order are in [`crate::pipeline`].

use foldhash::{HashSet, HashSetExt};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::active_days::ActiveDays;
use crate::domain::ids::{BatchId, ClientId, MemberId};

// Planning. A statement that reads one of these tables by key through a join or `= ANY` is run
// unprepared (`.persistent(false)`) or in a transaction that asks for custom plans
// ([`super::custom_plans`]), so Postgres plans it for its parameters at every execution:
// a prepared statement's generic plan, chosen while a table was small (a fresh database, or
// statistics not refreshed after a bulk load: autovacuum off or behind), would stay in use as the
// table grows and turn an index lookup into a scan. A custom plan sees the table's current size
// even without `ANALYZE`. Inserts whose conflicts are found through the unique index keep their
// prepared plans: they have no scan to choose, and planning their large arrays as constants
// would double their cost.
use crate::error::AppResult;

/// How many of these events of `client_id` are already counted (or being counted).
///
/// One lookup on the full unique key per id, whatever the statistics: written as
/// `client_id = $1 AND event_id = ANY($2)` (or as a semi-join), Postgres without statistics takes
/// `client_id = $1` for a selective condition (0.5 % of rows) and may read the client's whole range
/// of the index and filter it, which for a client holding most of the ledger is a read of all its
/// receipts per request (measured: 30,000 index entries for 100 ids; the many-process bench's
/// accept path fell to a third). A `LATERAL … LIMIT 1` per id is always planned as an index lookup.
pub async fn already_received(
    pool: &PgPool,
    client_id: ClientId,
    ids: &[Uuid],
) -> AppResult<usize> {
    let n = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM UNNEST($2::uuid[]) AS t(id)
           CROSS JOIN LATERAL (SELECT 1 FROM watch_event_receipts r
                               WHERE r.client_id = $1 AND r.event_id = t.id LIMIT 1) AS seen"#,
        client_id as ClientId,
        ids,
    )
    .persistent(false)
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
/// `likely_new` are events the API found no receipt of when it accepted them: they are inserted
/// without conflict handling first (a plain insert writes a third fewer WAL records and needs no
/// `RETURNING`), and a chunk that does meet an existing receipt (the same event delivered twice at
/// once, or a batch delivered again) is rolled back by Postgres and claimed as `others` are, with
/// `ON CONFLICT DO NOTHING`. So the hint only chooses the cheaper statement; which claim wins is
/// always decided by the ledger's unique key.
///
/// Large flushes are claimed in parallel chunks, each in key order (so two workers claiming the
/// same events cannot deadlock). A chunk is its own statement: after a failure some chunks may be
/// committed, which the retry finds as its own pending receipts (resumed), as after a crash.
pub async fn claim(
    pool: &PgPool,
    likely_new: &[(ClientId, Uuid, BatchId)],
    others: &[(ClientId, Uuid, BatchId)],
) -> AppResult<Claim> {
    let rows = likely_new.len() + others.len();
    let chunk = rows.div_ceil(CLAIM_CHUNKS).max(CLAIM_CHUNK_MIN_ROWS);
    let new =
        futures::future::try_join_all(likely_new.chunks(chunk).map(|c| claim_new_chunk(pool, c)));
    let rest = futures::future::try_join_all(others.chunks(chunk).map(|c| claim_chunk(pool, c)));
    let (new, rest) = tokio::try_join!(new, rest)?;
    let mut out = Claim::default();
    for c in new.into_iter().chain(rest) {
        out.fresh.extend(c.fresh);
        out.resumed.extend(c.resumed);
    }
    Ok(out)
}

/// Parallel statements one claim is split into at most…
const CLAIM_CHUNKS: usize = 4;
/// …each of at least this many rows.
const CLAIM_CHUNK_MIN_ROWS: usize = 5_000;

/// Claims a chunk of events expected to have no receipt yet with a plain insert; if one has, the
/// statement fails whole and the chunk is claimed by [`claim_chunk`].
async fn claim_new_chunk(pool: &PgPool, keyed: &[(ClientId, Uuid, BatchId)]) -> AppResult<Claim> {
    let (clients, ids, batches) = columns(keyed);
    let inserted = sqlx::query!(
        r#"INSERT INTO watch_event_receipts (client_id, event_id, batch_id)
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[])"#,
        &clients[..] as &[ClientId],
        &ids[..],
        &batches[..] as &[BatchId],
    )
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(Claim {
            fresh: keyed.iter().map(|k| (k.0, k.1)).collect(),
            resumed: HashSet::new(),
        }),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            tracing::debug!(
                rows = keyed.len(),
                "claim met existing receipts; claiming again with conflict handling"
            );
            claim_chunk(pool, keyed).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The client, event and batch columns of `keyed`, for `UNNEST`.
fn columns(keyed: &[(ClientId, Uuid, BatchId)]) -> (Vec<ClientId>, Vec<Uuid>, Vec<BatchId>) {
    (
        keyed.iter().map(|k| k.0).collect(),
        keyed.iter().map(|k| k.1).collect(),
        keyed.iter().map(|k| k.2).collect(),
    )
}

async fn claim_chunk(pool: &PgPool, keyed: &[(ClientId, Uuid, BatchId)]) -> AppResult<Claim> {
    let (clients, ids, batches) = columns(keyed);
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
        let mut tx = pool.begin().await?;
        super::custom_plans(&mut tx).await?;
        let resumed = sqlx::query_as!(
            EventKey,
            r#"SELECT r.client_id AS "client_id!: ClientId", r.event_id AS "event_id!"
               FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[]) AS t(client_id, event_id, batch_id)
               JOIN watch_event_receipts r
                 ON r.client_id = t.client_id AND r.event_id = t.event_id AND r.batch_id = t.batch_id
               WHERE NOT EXISTS (SELECT 1 FROM landed_watch_batches l WHERE l.batch_id = r.batch_id)"#,
            &rc[..] as &[ClientId],
            &ri[..],
            &rb[..] as &[BatchId],
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        c.resumed = resumed
            .into_iter()
            .map(|r| (r.client_id, r.event_id))
            .collect();
    }
    Ok(c)
}

/// A receipt's key.
struct EventKey {
    client_id: ClientId,
    event_id: Uuid,
}

/// A member locked by [`lock_members`], with their active days as they stand.
#[derive(Debug)]
pub struct LockedMember {
    pub client_id: ClientId,
    pub member_id: MemberId,
    /// False for members counted before their profile state existed, until a landing rebuilds it.
    pub profile_tracked: bool,
    pub active_days: ActiveDays,
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
    /// The member's profile state was rebuilt in this landing (see [`ProfileAdds`]): from now
    /// on it is tracked.
    pub rebuilt: bool,
}

/// What a landing does to the members' profile state, from which `members.active_days` and
/// `members.favorite_category` are kept: each member's distinct active days (a bit set on the
/// member's row, [`ActiveDays`]) and watch seconds per category (`member_category_seconds`). Every
/// member named here must be locked by [`lock_members`] in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileAdds {
    /// `(client, member, active days)`: the whole set each touched member has after the landing
    /// (read under the lock and added to, or rebuilt), one entry per member.
    pub days: Vec<(ClientId, MemberId, ActiveDays)>,
    /// `(client, member, category, seconds)`, in key order, one entry per member and category.
    pub seconds: Vec<(ClientId, MemberId, String, i64)>,
}

/// Locks the rows of `members` (`(client, member)` keys) in key order, for the rest of the
/// landing transaction, and returns those that exist with whether their profile state is tracked
/// (false for members counted before it existed, until a landing rebuilds it) and their active
/// days as they stand.
///
/// Every landing that counts events of a member holds this lock while it changes the member's
/// summary and profile state, so landers of different batches touching one member take turns,
/// and locking in key order keeps them from deadlocking. `FOR NO KEY UPDATE` (what the summary
/// update takes anyway) leaves rows that refer to the member, such as refresh tokens, insertable
/// meanwhile.
pub async fn lock_members(
    tx: &mut Transaction<'static, Postgres>,
    members: &[(ClientId, MemberId)],
) -> AppResult<Vec<LockedMember>> {
    let c: Vec<ClientId> = members.iter().map(|k| k.0).collect();
    let m: Vec<MemberId> = members.iter().map(|k| k.1).collect();
    super::custom_plans(tx).await?;
    let rows = sqlx::query!(
        r#"SELECT m.client_id AS "client_id: ClientId", m.id AS "id: MemberId", m.profile_tracked,
                  m.active_days_since, m.active_day_bits
           FROM members m
           JOIN UNNEST($1::uuid[], $2::uuid[]) AS k(client_id, id)
             ON m.id = k.id AND m.client_id = k.client_id
           ORDER BY m.client_id, m.id
           FOR NO KEY UPDATE OF m"#,
        &c[..] as &[ClientId],
        &m[..] as &[MemberId],
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| LockedMember {
            client_id: r.client_id,
            member_id: r.id,
            profile_tracked: r.profile_tracked,
            active_days: ActiveDays::from_stored(r.active_days_since, r.active_day_bits),
        })
        .collect())
}

/// Which of `ids` (events of `client_id`) are claimed by a batch that has not landed, as this
/// transaction sees it: its own batches count as landed, those of landings still open elsewhere
/// (or rolled back) do not. Such events are not counted yet; whoever lands their batch counts them.
pub async fn pending_events(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    ids: &[Uuid],
) -> AppResult<HashSet<Uuid>> {
    let pending = sqlx::query_scalar!(
        r#"SELECT t.id AS "event_id!" FROM UNNEST($2::uuid[]) AS t(id)
           CROSS JOIN LATERAL (SELECT r.batch_id FROM watch_event_receipts r
                               WHERE r.client_id = $1 AND r.event_id = t.id LIMIT 1) AS r
           WHERE NOT EXISTS (SELECT 1 FROM landed_watch_batches l WHERE l.batch_id = r.batch_id)"#,
        client_id as ClientId,
        ids,
    )
    .persistent(false)
    .fetch_all(&mut **tx)
    .await?;
    Ok(pending.into_iter().collect())
}

/// Adds `activity` to the member summaries and `profile` to the members' profile state, and sets
/// the members' active days and favourite category from that state, inside the transaction that
/// owns the batches (its commit lands them). The members must be locked ([`lock_members`]).
///
/// The work is proportional to the members and categories given: each member's row gets their
/// new set of active days (and its count), category seconds are added to, and the favourite is
/// the first of the member's few category rows by seconds (most first), then category in byte
/// order.
pub async fn count_landed(
    tx: &mut Transaction<'static, Postgres>,
    activity: &[Activity],
    profile: &ProfileAdds,
) -> AppResult<()> {
    if activity.is_empty() {
        return Ok(());
    }
    if !profile.seconds.is_empty() {
        let c: Vec<ClientId> = profile.seconds.iter().map(|s| s.0).collect();
        let m: Vec<MemberId> = profile.seconds.iter().map(|s| s.1).collect();
        let k: Vec<&str> = profile.seconds.iter().map(|s| s.2.as_str()).collect();
        let n: Vec<i64> = profile.seconds.iter().map(|s| s.3).collect();
        sqlx::query!(
            "INSERT INTO member_category_seconds (client_id, member_id, category, seconds)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bigint[])
                  AS s(client_id, member_id, category, seconds)
             ORDER BY member_id, category
             ON CONFLICT (member_id, category)
             DO UPDATE SET seconds = member_category_seconds.seconds + EXCLUDED.seconds",
            &c[..] as &[ClientId],
            &m[..] as &[MemberId],
            &k[..] as &[&str],
            &n[..],
        )
        .execute(&mut **tx)
        .await?;
    }
    let c: Vec<ClientId> = activity.iter().map(|a| a.client_id).collect();
    let m: Vec<MemberId> = activity.iter().map(|a| a.member_id).collect();
    let s: Vec<i64> = activity.iter().map(|a| a.seconds).collect();
    let v: Vec<i64> = activity.iter().map(|a| a.views).collect();
    let f: Vec<Option<DateTime<Utc>>> = activity.iter().map(|a| a.first).collect();
    let l: Vec<Option<DateTime<Utc>>> = activity.iter().map(|a| a.last).collect();
    let r: Vec<bool> = activity.iter().map(|a| a.rebuilt).collect();
    let dc: Vec<ClientId> = profile.days.iter().map(|d| d.0).collect();
    let dm: Vec<MemberId> = profile.days.iter().map(|d| d.1).collect();
    let since: Vec<Option<NaiveDate>> = profile.days.iter().map(|d| d.2.since()).collect();
    let bits: Vec<&[u8]> = profile.days.iter().map(|d| d.2.bits()).collect();
    let count: Vec<i32> = profile.days.iter().map(|d| d.2.len() as i32).collect();
    // The category seconds were added by the statement above.
    sqlx::query!(
        r#"UPDATE members m SET
               watch_seconds = m.watch_seconds + d.seconds,
               class_views = m.class_views + d.views,
               first_active_at = LEAST(m.first_active_at, d.first_at),
               last_active_at = GREATEST(m.last_active_at, d.last_at),
               active_days = COALESCE(a.days, m.active_days),
               active_days_since = CASE WHEN a.member_id IS NULL THEN m.active_days_since
                                        ELSE a.since END,
               active_day_bits = COALESCE(a.bits, m.active_day_bits),
               favorite_category = (
                   SELECT s.category FROM member_category_seconds s
                   WHERE s.member_id = m.id AND s.client_id = m.client_id
                   ORDER BY s.seconds DESC, s.category COLLATE "C" LIMIT 1),
               profile_tracked = m.profile_tracked OR d.rebuilt,
               updated_at = now()
           FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[],
                       $6::timestamptz[], $7::bool[])
                AS d(client_id, member_id, seconds, views, first_at, last_at, rebuilt)
           LEFT JOIN UNNEST($8::uuid[], $9::uuid[], $10::date[], $11::bytea[], $12::int[])
                AS a(client_id, member_id, since, bits, days)
             ON a.client_id = d.client_id AND a.member_id = d.member_id
           WHERE m.id = d.member_id AND m.client_id = d.client_id"#,
        &c[..] as &[ClientId],
        &m[..] as &[MemberId],
        &s[..],
        &v[..],
        &f[..] as &[Option<DateTime<Utc>>],
        &l[..] as &[Option<DateTime<Utc>>],
        &r[..],
        &dc[..] as &[ClientId],
        &dm[..] as &[MemberId],
        &since[..] as &[Option<NaiveDate>],
        &bits[..] as &[&[u8]],
        &count[..],
    )
    .persistent(false)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Receipts older than 35 days are no longer needed (events that old are refused). A sweep over
/// every client (listed in [`unscoped`](crate::pg::unscoped)).
///
/// Both deletes find their rows through a BRIN index on the time column, whatever the planner's
/// statistics say (without them it takes a third of the rows to match and reads the whole table;
/// sequential scans are off for the transaction). A BRIN index skips a range of pages only once
/// the range is summarized: autovacuum summarizes new ranges as it vacuums, but where it is off
/// or behind, every range written since is unsummarized and the deletes read every page anyway.
/// So the new ranges are summarized first, which reads the pages written since the last prune,
/// once. Measured on a ledger of 2.8 M receipts with no range summarized: 645 ms and 29,000 pages
/// read at every prune (every worker start and every hour), evicting the ledger's hot index pages
/// from Postgres's cache; summarized, 0.25 ms.
pub async fn prune(pool: &PgPool) -> AppResult<u64> {
    summarize_new_ranges(pool, "watch_event_receipts_received_brin").await;
    summarize_new_ranges(pool, "landed_watch_batches_landed_brin").await;
    let mut tx = pool.begin().await?;
    sqlx::query!("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await?;
    let receipts = sqlx::query!(
        "DELETE FROM watch_event_receipts WHERE received_at < now() - interval '35 days'"
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query!("DELETE FROM landed_watch_batches WHERE landed_at < now() - interval '35 days'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(receipts)
}

/// Summarizes the page ranges of a BRIN `index` written since its last summary. A failure (the
/// role does not own the table, say) is logged and the prune goes on: it is then only slower.
async fn summarize_new_ranges(pool: &PgPool, index: &str) {
    let summarized = sqlx::query_scalar!(
        r#"SELECT brin_summarize_new_values($1::text::regclass) AS "ranges!""#,
        index,
    )
    .fetch_one(pool)
    .await;
    match summarized {
        Ok(ranges) => tracing::debug!(index, ranges, "BRIN ranges summarized before pruning"),
        Err(e) => {
            tracing::warn!(index, error = %e, "BRIN ranges not summarized; pruning reads the whole table")
        }
    }
}
