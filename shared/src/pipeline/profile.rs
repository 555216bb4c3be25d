//! Step 3 of [`land_pending`](super::land_pending): what a landing adds to the members' profile
//! state, from which their active days and favourite category are kept
//! ([`receipts::ProfileAdds`]). For a member whose state is tracked that is just the flush's own
//! events: their days, added to the member's set of days (read with the row lock, one small bit
//! set), and their seconds per category, so the cost follows the flush, not the member's history.
//!
//! A member counted before the state existed (`members.profile_tracked = false`, set by the
//! migration that added it) has their state rebuilt once, by their first landing since, from
//! their history in ClickHouse, which by then holds this flush's events too. The flush then adds
//! nothing more for that member. The rebuild is exact: it happens under the member's row lock
//! (taken in key order by every landing that counts their events), and it leaves out every event
//! whose batch has not landed as the owning transaction sees it. So:
//! - the flush's own events are in (its batches' `landed_watch_batches` rows are this
//!   transaction's own);
//! - events of another landing still open, or of one that failed after inserting into ClickHouse,
//!   are out: whoever lands their batch counts them after this commit, finding the member tracked;
//! - events of landings committed before are in: they committed before the lock was granted, so
//!   their rows were in ClickHouse before it was read.
//!
//! The one inexact case: an event whose rows reached ClickHouse in a batch that never landed (a
//! batch given up by the queue after its last delivery) and whose receipt has since been pruned
//! (after 35 days) cannot be told apart from a counted one, and is rebuilt in, as the full
//! recompute before this state did. Days are a set, so a day can never be counted twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;

use crate::ch::events::{member_history, ChEvent, HistoryRow};
use crate::ch::ClickHouse;
use crate::domain::active_days::ActiveDays;
use crate::domain::ids::{ClientId, MemberId};
use crate::error::AppResult;
use crate::pg::receipts::{self, ProfileAdds};
use sqlx::{Postgres, Transaction};

/// Members whose history is read in one ClickHouse query…
const REBUILD_MEMBERS: usize = 1_000;
/// …and history rows checked against the receipt ledger in one statement.
const REBUILD_ROWS: usize = 10_000;

/// The profile additions of one landing, and the members whose state it rebuilt.
#[derive(Debug, Default)]
pub struct Profiles {
    pub adds: ProfileAdds,
    pub rebuilt: HashSet<(ClientId, MemberId)>,
}

/// Locks the members of `events` (in key order, for the rest of `tx`) and returns what the
/// landing does to their profile state: for tracked members, their set of days with the events'
/// days added and the events' seconds per category; for untracked ones, the rebuilt state.
/// Members that do not exist get nothing.
pub async fn prepare(
    tx: &mut Transaction<'static, Postgres>,
    ch: &ClickHouse,
    events: &[&ChEvent],
) -> AppResult<Profiles> {
    if events.is_empty() {
        return Ok(Profiles::default());
    }
    let mut keys: Vec<(ClientId, MemberId)> =
        events.iter().map(|e| (e.client_id, e.member_id)).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut state = State::default();
    let mut tracked = HashSet::with_capacity(keys.len());
    let mut untracked: HashMap<ClientId, Vec<MemberId>> = HashMap::new();
    for m in receipts::lock_members(tx, &keys).await? {
        let key = (m.client_id, m.member_id);
        if m.profile_tracked {
            // Added to as they stand; a rebuilt member's days start empty.
            state.days.insert(key, m.active_days);
            tracked.insert(key);
        } else {
            untracked.entry(m.client_id).or_default().push(m.member_id);
        }
    }
    for e in events {
        if tracked.contains(&(e.client_id, e.member_id)) {
            state.add(
                e.client_id,
                e.member_id,
                e.local_date,
                &e.category,
                e.watched_seconds,
            );
        }
    }
    let mut rebuilt = HashSet::new();
    for (client, members) in untracked {
        for chunk in members.chunks(REBUILD_MEMBERS) {
            rebuild(tx, ch, client, chunk, &mut state).await?;
            rebuilt.extend(chunk.iter().map(|m| (client, *m)));
        }
    }
    Ok(Profiles {
        adds: state.into_adds(),
        rebuilt,
    })
}

/// Adds the counted history of `members` (of `client`) to `state`: every row of their
/// ClickHouse history whose event is not pending in the receipt ledger.
async fn rebuild(
    tx: &mut Transaction<'static, Postgres>,
    ch: &ClickHouse,
    client: ClientId,
    members: &[MemberId],
    state: &mut State,
) -> AppResult<()> {
    let mut cursor = member_history(ch, client, members)?;
    let mut rows: Vec<HistoryRow> = Vec::with_capacity(REBUILD_ROWS);
    loop {
        let row = cursor.next().await?;
        let done = row.is_none();
        rows.extend(row);
        if rows.len() == REBUILD_ROWS || (done && !rows.is_empty()) {
            let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.event_id).collect();
            let pending = receipts::pending_events(tx, client, &ids).await?;
            for r in rows.drain(..) {
                if !pending.contains(&r.event_id) {
                    state.add(
                        client,
                        r.member_id,
                        r.local_date,
                        &r.category,
                        r.watched_seconds,
                    );
                }
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Each member's active days and the seconds per category being gathered, in key order.
#[derive(Default)]
struct State {
    days: BTreeMap<(ClientId, MemberId), ActiveDays>,
    seconds: BTreeMap<(ClientId, MemberId, String), i64>,
}

impl State {
    fn add(
        &mut self,
        client: ClientId,
        member: MemberId,
        day: NaiveDate,
        category: &str,
        seconds: u32,
    ) {
        self.days.entry((client, member)).or_default().insert(day);
        *self
            .seconds
            .entry((client, member, category.to_string()))
            .or_default() += i64::from(seconds);
    }

    fn into_adds(self) -> ProfileAdds {
        ProfileAdds {
            days: self.days.into_iter().map(|((c, m), d)| (c, m, d)).collect(),
            seconds: self
                .seconds
                .into_iter()
                .map(|((c, m, k), s)| (c, m, k, s))
                .collect(),
        }
    }
}
