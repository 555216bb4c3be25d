//! The seen-events filter: which watch events the API has accepted before, kept in Redis beside the
//! event queue, so that `POST /app/events` asks Postgres's receipt ledger only about the events that
//! may be repeats.
//!
//! It is a Bloom filter: an event the filter has never been told of is certainly new; one it knows
//! (or a false positive: about one in 2,000 at the designed load, so about one batch of 100
//! in 20 asks the ledger about one event) may be a repeat, and only those are looked up in the
//! ledger, so the 202's `duplicates` figure stays what the ledger says. Each event sets six bits
//! of one 32-bit word of a Redis string, both chosen by a hash of the client and the event id; one
//! Lua script per batch reads the words, answers which events had all their bits set, and ORs the
//! batch's bits in (atomically: concurrent batches cannot lose each other's bits). One word per
//! event, not the bits spread over the string as a textbook filter does: Redis's cost is per
//! field read or written, and the block costs memory instead (48 bits per event for the error
//! rate a plain filter has at 20).
//!
//! Generations: receipts are kept 35 days ([`crate::pg::receipts::prune`]), so the filter is a
//! string per 35-day generation (`{ns}:seen:<n>`, `n` = days since the epoch ÷ 35); a batch is
//! checked against the current and the previous generation and added to the current one. A
//! generation expires 70 days after it was first written. At `EVENTS_SEEN_FILTER_MB` megabytes per
//! generation the filter holds about MB × 175,000 events per 35 days at that error rate; more
//! events raise the false positives (more ledger lookups), never lose a repeat.
//!
//! Completeness: the filter only answers once `{ns}:seen:complete` is set, i.e. once a worker has
//! added every receipt of the ledger ([`SeenFilter::backfill`], at its start and whenever the marker
//! is missing: a new deployment, Redis data lost). Until then the API looks every event up in the
//! ledger, as it does when the filter is off (`EVENTS_SEEN_FILTER_MB=0`) or Redis does not answer.
//! Events the API accepts are added whether or not the filter is complete. The one gap: an event
//! accepted before the filter existed and counted after the backfill read the ledger is unknown to
//! the filter, so a repeat of it is answered as accepted (and still counted once, by the worker's
//! claim: the figure is the only thing the filter decides).

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::ids::ClientId;
use crate::error::AppResult;

/// Days of one generation: the receipts' lifetime.
pub const GENERATION_DAYS: i64 = 35;

/// Events read from the ledger and added per script call while backfilling.
const BACKFILL_CHUNK: usize = 5_000;

/// Checks and adds a batch. KEYS: the current generation, the previous one, the completeness
/// marker. ARGV[1]: seconds a new generation lives; ARGV[2]: 1 to check and add, 0 to add only;
/// ARGV[3]: the masks, one little-endian i32 per event; ARGV[4…]: the words (`#<index>`), one
/// per event. Answers {complete, seen₁, seen₂, …} (seen only when checking). The words come as
/// strings and the masks as bytes: a Lua number handed to Redis is printed with `%.17g` first,
/// which cost more than the rest of the script.
const SCRIPT: &str = r"
local check = ARGV[2] == '1'
local masks = ARGV[3]
local nw = #ARGV - 3
local gets = {}
local g = 0
for j = 4, nw + 3 do
  gets[g + 1] = 'GET'; gets[g + 2] = 'u32'; gets[g + 3] = ARGV[j]; g = g + 3
end
local cur = redis.call('BITFIELD', KEYS[1], unpack(gets))
local prev = nil
if check and redis.call('EXISTS', KEYS[2]) == 1 then
  prev = redis.call('BITFIELD', KEYS[2], unpack(gets))
end
local out = {redis.call('EXISTS', KEYS[3])}
local band, bor, unpack4 = bit.band, bit.bor, struct.unpack
local value = {}
for j = 1, nw do
  local mj = unpack4('<i4', masks, 4 * j - 3)
  local c = cur[j]
  if check then
    local seen = band(c, mj) == mj
    if not seen and prev then
      seen = band(prev[j], mj) == mj
    end
    out[j + 1] = seen and 1 or 0
  end
  local w = ARGV[j + 3]
  value[w] = bor(value[w] or c, mj)
end
local sets = {}
local s = 0
for j = 1, nw do
  local w = ARGV[j + 3]
  local v = value[w]
  if v ~= nil then
    if v < 0 then v = v + 4294967296 end
    if v ~= cur[j] then
      sets[s + 1] = 'SET'; sets[s + 2] = 'u32'; sets[s + 3] = w; sets[s + 4] = string.format('%d', v)
      s = s + 4
    end
    value[w] = nil
  end
end
if s > 0 then
  redis.call('BITFIELD', KEYS[1], unpack(sets))
  if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
return out
";

/// The filter of one deployment (`REDIS_NAMESPACE`).
#[derive(Clone)]
pub struct SeenFilter {
    redis: ConnectionManager,
    namespace: String,
    /// 32-bit words per generation; 0 = off.
    words: u64,
}

impl SeenFilter {
    /// The deployment's filter as every API instance and worker opens it: `REDIS_NAMESPACE`,
    /// `EVENTS_SEEN_FILTER_MB` megabytes per generation (0 turns it off).
    pub fn open(redis: ConnectionManager, config: &Config) -> Self {
        Self {
            redis,
            namespace: config.redis_namespace.clone(),
            words: u64::from(config.events_seen_filter_mb) * 1024 * 1024 / 4,
        }
    }

    pub fn enabled(&self) -> bool {
        self.words > 0
    }

    fn key(&self, generation: i64) -> String {
        format!("{}:seen:{generation}", self.namespace)
    }

    fn complete_key(&self) -> String {
        format!("{}:seen:complete", self.namespace)
    }

    /// For each event, whether it may have been accepted before (`None` while the filter is not
    /// complete or is off: every event may be a repeat). Adds the events to the filter either way.
    pub async fn check_and_add(
        &self,
        client: ClientId,
        ids: &[Uuid],
    ) -> AppResult<Option<Vec<bool>>> {
        if !self.enabled() || ids.is_empty() {
            return Ok(None);
        }
        let generation = generation_of(Utc::now());
        let reply = self.run(generation, true, client, ids.iter()).await?;
        if reply.first() != Some(&1) || reply.len() != ids.len() + 1 {
            return Ok(None);
        }
        Ok(Some(reply[1..].iter().map(|&s| s == 1).collect()))
    }

    /// Whether every receipt of the ledger is in the filter (the marker is set).
    pub async fn is_complete(&self) -> AppResult<bool> {
        let mut conn = self.redis.clone();
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.complete_key())
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    /// Adds every receipt of the ledger younger than [`GENERATION_DAYS`] to the generation of its
    /// `received_at`, then marks the filter complete. Idempotent (bits are only ever set), so two
    /// workers doing it at once only do it twice. Returns the receipts added.
    pub async fn backfill(&self, db: &sqlx::PgPool) -> AppResult<usize> {
        if !self.enabled() {
            return Ok(0);
        }
        let now = Utc::now();
        let current = generation_of(now);
        let mut after: Option<(ClientId, Uuid)> = None;
        let mut added = 0;
        loop {
            let page = crate::pg::unscoped::receipts_page(db, after, BACKFILL_CHUNK as i64).await?;
            let Some(&(client, id, _)) = page.last() else {
                break;
            };
            after = Some((client, id));
            added += page.len();
            // In runs of one client and generation (a page is in key order: runs of one client).
            let generation = |at| generation_of(at).clamp(current - 1, current);
            for run in page.chunk_by(|a, b| a.0 == b.0 && generation(a.2) == generation(b.2)) {
                let (client, _, at) = run[0];
                for part in run.chunks(500) {
                    self.run(
                        generation(at),
                        false,
                        client,
                        part.iter().map(|(_, id, _)| id),
                    )
                    .await?;
                }
            }
            if page.len() < BACKFILL_CHUNK {
                break;
            }
        }
        let mut conn = self.redis.clone();
        let () = redis::cmd("SET")
            .arg(self.complete_key())
            .arg(now.to_rfc3339())
            .query_async(&mut conn)
            .await?;
        Ok(added)
    }

    /// Runs the script for `ids` of `client` against `generation` (checking, or adding only).
    async fn run<'a>(
        &self,
        generation: i64,
        check: bool,
        client: ClientId,
        ids: impl Iterator<Item = &'a Uuid>,
    ) -> AppResult<Vec<i64>> {
        static SCRIPT_: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));
        let mut masks = Vec::with_capacity(4 * ids.size_hint().0);
        let mut words = Vec::with_capacity(ids.size_hint().0);
        for id in ids {
            let (word, mask) = position(client, id, self.words);
            masks.extend_from_slice(&mask.to_le_bytes());
            words.push(format!("#{word}"));
        }
        let ttl = Duration::from_secs(2 * GENERATION_DAYS as u64 * 86_400);
        let mut conn = self.redis.clone();
        let reply: Vec<i64> = SCRIPT_
            .key(self.key(generation))
            .key(self.key(generation - 1))
            .key(self.complete_key())
            .arg(ttl.as_secs())
            .arg(if check { 1 } else { 0 })
            .arg(masks)
            .arg(words)
            .invoke_async(&mut conn)
            .await?;
        Ok(reply)
    }
}

/// The generation an event received at `at` belongs to.
pub fn generation_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400 * GENERATION_DAYS)
}

/// The word (index of the 32-bit word) and six-bit mask of one event in a filter of `words`
/// words. The hash is fixed here (not `std`'s, which may change between releases): the API and
/// workers of different releases must agree on it.
fn position(client: ClientId, id: &Uuid, words: u64) -> (u32, u32) {
    let c = client.0.as_u64_pair();
    let e = id.as_u64_pair();
    let h = mix(e.1 ^ mix(e.0 ^ mix(c.0 ^ mix(c.1 ^ 0x9e37_79b9_7f4a_7c15))));
    let word = ((h >> 32) % words) as u32;
    let mask = (0..6).fold(0u32, |m, k| m | 1 << ((h >> (5 * k)) & 31));
    (word, mask)
}

/// The 64-bit finaliser of MurmurHash3: every input bit flips about half of the output bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_in_range_and_differ_between_clients() {
        let id = Uuid::new_v4();
        let (a, b) = (ClientId(Uuid::new_v4()), ClientId(Uuid::new_v4()));
        let words = 1_000;
        let (w, m) = position(a, &id, words);
        assert!(u64::from(w) < words);
        assert!(m != 0 && m.count_ones() <= 6);
        assert_eq!(position(a, &id, words), position(a, &id, words));
        assert_ne!(position(a, &id, words), position(b, &id, words));
    }

    /// The designed load (48 bits of filter per event): an in-memory copy of the filter's bits
    /// answers "maybe seen" for fewer than one in 1,000 events it was never told of (about one
    /// in 2,000 measured).
    #[test]
    fn false_positives_are_rare_at_the_designed_load() {
        let words: u64 = 1 << 16;
        let capacity = (words * 32 / 48) as usize;
        let client = ClientId(Uuid::new_v4());
        let mut bits = vec![0u32; words as usize];
        for _ in 0..capacity {
            let (w, m) = position(client, &Uuid::new_v4(), words);
            bits[w as usize] |= m;
        }
        let trials = 400_000;
        let hits = (0..trials)
            .filter(|_| {
                let (w, m) = position(client, &Uuid::new_v4(), words);
                bits[w as usize] & m == m
            })
            .count();
        assert!(hits * 1_000 < trials, "{hits} false positives in {trials}");
    }

    #[test]
    fn generations_are_35_days() {
        let t = DateTime::from_timestamp(86_400 * 35 * 100, 0).unwrap();
        assert_eq!(generation_of(t), 100);
        assert_eq!(generation_of(t - chrono::Duration::seconds(1)), 99);
    }
}
