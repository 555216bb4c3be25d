//! The read cache: each client's dashboard, analytics, funnel, billing and member-list answers,
//! kept in this process as the bytes of the response body, so that a repeated request does no
//! database work.
//!
//! **Key.** The client ([`ClientId`], from the caller's principal: one client's entry can never
//! answer another), the client's current generation (below), and the route with its checked
//! parameters ([`ReadQuery`]). The envelope holds nothing per request (the request id travels in
//! a header), so the whole body is cached.
//!
//! **What drops an answer.** [`ReadCache::forget`] (one client) and [`ReadCache::forget_all`]:
//! - the worker announces the clients whose events a landing counted, after it committed;
//! - an API instance forgets a client after any successful write of its principals (except the
//!   routes marked [`crate::middleware::keeps_reads`]) and announces it;
//! - `portal-admin` announces every client after a catalogue import or the demo seed;
//! - every instance applies the announcements (`watch_announcements`), and forgets everything
//!   whenever its listener (re)subscribes, since announcements made meanwhile are lost.
//!
//! Without an announcement an answer lives at most `READ_CACHE_TTL_SECS` (the fallback; 0 turns
//! the cache off), and never past the client's next local midnight, since "today" decides the
//! ranges and the default billing month. The cache holds at most [`MAX_BYTES`] of bodies.
//!
//! **Why forgetting is race-free.** Forgetting does not delete entries: it moves the client to a
//! new generation, a number never used before for anyone (one counter for the whole cache;
//! `forget_all` moves every client to a fresh one at once). A request reads its client's
//! generation *before* it looks anything up or reads any data, and keys its entry with it. So:
//! - a computation that began before a forget stores its answer under the old generation, which
//!   no request reads again: it can never be served as fresh after the forget;
//! - a request that begins after a forget uses the new generation, so it is answered only by a
//!   computation that also began after the forget (one started by itself or by another request
//!   after it, which moka's `or_try_insert_with` lets concurrent misses share), and every
//!   forget comes after the commit it is about, so that computation reads the committed data.
//!
//! Answers under old generations stay until they expire or are evicted; they are never read.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use moka::future::Cache;
use moka::Expiry;
use portal_shared::ch::analytics::RangeSpec;
use portal_shared::domain::ids::ClientId;
use portal_shared::domain::month::MonthQuery;
use portal_shared::domain::pagination::{Page, Sort};
use portal_shared::error::AppError;
use portal_shared::pg::members::ListFilter;
use salvo::http::header::{HeaderValue, CONTENT_TYPE};
use salvo::oapi::{Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use salvo::Scribe;
use serde::Serialize;

use crate::envelope::Envelope;
use crate::error::ApiResult;

/// The most response bytes the cache holds (bodies are weighed by their length).
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A cached route and its checked parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadQuery {
    Dashboard,
    Analytics(RangeSpec),
    Funnel(RangeSpec),
    Billing {
        month: MonthQuery,
        page: Page,
    },
    /// A page of the member list, searched or not. What it shows changes with registrations
    /// (API writes), landings (watch time, last activity) and the local day (status): the same
    /// events as the dashboard's.
    Members {
        filter: ListFilter,
        sort: Sort,
        page: Page,
    },
}

impl ReadQuery {
    /// The metrics label.
    fn route(&self) -> &'static str {
        match self {
            Self::Dashboard => "dashboard",
            Self::Analytics(_) => "analytics",
            Self::Funnel(_) => "funnel",
            Self::Billing { .. } => "billing",
            Self::Members { .. } => "members",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReadKey {
    client: ClientId,
    generation: u64,
    query: ReadQuery,
}

/// A cached answer: the response body, and when it stops being served.
#[derive(Clone)]
struct Answer {
    body: Bytes,
    stale_at: Instant,
}

/// An answer as a handler computes it: the data, and the end of the client's local day it was
/// computed on (after which "today" means another day).
pub struct Computed<T> {
    pub data: T,
    pub day_ends: DateTime<Utc>,
}

/// The instant the client's local day of `now` ends (its next local midnight; when that midnight
/// does not exist, because a clock change skips it, the first hour that does).
pub fn day_end(tz: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let next = now
        .with_timezone(&tz)
        .date_naive()
        .succ_opt()
        .unwrap_or(chrono::NaiveDate::MAX);
    (0..3)
        .find_map(|h| {
            tz.from_local_datetime(&next.and_time(NaiveTime::from_hms_opt(h, 0, 0)?))
                .earliest()
        })
        .map_or(now, |t| t.with_timezone(&Utc))
}

struct StaleAt;

impl Expiry<ReadKey, Answer> for StaleAt {
    fn expire_after_create(
        &self,
        _: &ReadKey,
        a: &Answer,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(a.stale_at.saturating_duration_since(created_at))
    }
}

/// Each client's current generation (see the module comment).
struct Generations {
    /// The last number handed out.
    last: u64,
    /// The generation of every client not in `moved`.
    base: u64,
    /// Clients moved on since `base` was set.
    moved: HashMap<ClientId, u64>,
}

pub struct ReadCache {
    /// Zero: the cache is off and every request computes its answer.
    ttl: Duration,
    answers: Cache<ReadKey, Answer>,
    generations: Mutex<Generations>,
}

impl ReadCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            answers: Cache::builder()
                .max_capacity(MAX_BYTES)
                .weigher(|_, a: &Answer| u32::try_from(a.body.len()).unwrap_or(u32::MAX))
                .expire_after(StaleAt)
                .build(),
            generations: Mutex::new(Generations {
                last: 0,
                base: 0,
                moved: HashMap::new(),
            }),
        }
    }

    fn generations(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self, client: ClientId) -> u64 {
        let g = self.generations();
        g.moved.get(&client).copied().unwrap_or(g.base)
    }

    /// No answer of `client` computed before this call is served after it.
    pub fn forget(&self, client: ClientId) {
        let mut g = self.generations();
        g.last += 1;
        let next = g.last;
        g.moved.insert(client, next);
    }

    /// No answer computed before this call is served after it, whoever's.
    pub fn forget_all(&self) {
        {
            let mut g = self.generations();
            g.last += 1;
            g.base = g.last;
            g.moved.clear();
        }
        // Only to free the memory now: the generations already keep these from being served.
        self.answers.invalidate_all();
    }

    /// The answer to `query` for `client`: the cached body, or `compute`'s result, serialized in
    /// the success envelope and kept (errors are not kept). Concurrent misses of one key run one
    /// computation. Counts `portal_read_cache_hits_total` / `portal_read_cache_misses_total`; a
    /// request that waited for another's computation counts as a hit.
    pub async fn answer<T, F>(
        &self,
        client: ClientId,
        query: ReadQuery,
        compute: F,
    ) -> ApiResult<CachedJson<Envelope<T>>>
    where
        T: Serialize + ToSchema + 'static,
        F: Future<Output = Result<Computed<T>, AppError>>,
    {
        if self.ttl.is_zero() {
            return Ok(CachedJson::new(serialize(compute.await?.data)?));
        }
        let route = query.route();
        let key = ReadKey {
            client,
            generation: self.generation(client),
            query,
        };
        let started = Instant::now();
        let ttl = self.ttl;
        let entry = self
            .answers
            .entry(key)
            .or_try_insert_with(async move {
                let c = compute.await?;
                let day_left = (c.day_ends - Utc::now()).to_std().unwrap_or_default();
                Ok::<_, AppError>(Answer {
                    body: serialize(c.data)?,
                    stale_at: (started + ttl).min(Instant::now() + day_left),
                })
            })
            .await
            // The computation's own error, whatever it is (a month in the future is a 400): a
            // request that shared it gets a copy.
            .map_err(std::sync::Arc::unwrap_or_clone)?;
        if entry.is_fresh() {
            metrics::counter!("portal_read_cache_misses_total", "route" => route).increment(1);
        } else {
            metrics::counter!("portal_read_cache_hits_total", "route" => route).increment(1);
        }
        Ok(CachedJson::new(entry.into_value().body))
    }
}

fn serialize<T: Serialize + ToSchema + 'static>(data: T) -> Result<Bytes, AppError> {
    serde_json::to_vec(&Envelope {
        success: true,
        data,
    })
    .map(Bytes::from)
    .map_err(|e| AppError::internal(format!("serializing an answer: {e}")))
}

/// A JSON body already serialized (what the read cache keeps), written as salvo's `Json` writes
/// one, and documented as `Json<T>`. Cached and freshly computed answers both go through it, so a
/// hit and a miss answer the same bytes and headers.
pub struct CachedJson<T> {
    body: Bytes,
    _of: PhantomData<fn() -> T>,
}

impl<T> CachedJson<T> {
    fn new(body: Bytes) -> Self {
        Self {
            body,
            _of: PhantomData,
        }
    }
}

impl<T> Scribe for CachedJson<T> {
    fn render(self, res: &mut Response) {
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        res.body(self.body);
    }
}

impl<T: ToSchema + 'static> EndpointOutRegister for CachedJson<T> {
    fn register(components: &mut Components, operation: &mut Operation) {
        <Json<T> as EndpointOutRegister>::register(components, operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientId {
        format!("0190b3f0-0000-7000-8000-0000000000{n:02}")
            .parse()
            .unwrap()
    }

    #[derive(Serialize, ToSchema)]
    struct N {
        n: u32,
    }

    fn computed(n: u32) -> Result<Computed<N>, AppError> {
        Ok(Computed {
            data: N { n },
            day_ends: Utc::now() + chrono::Duration::hours(1),
        })
    }

    async fn body(cache: &ReadCache, c: ClientId, n: u32) -> String {
        let answer = cache
            .answer(c, ReadQuery::Dashboard, async move { computed(n) })
            .await
            .unwrap_or_else(|e| panic!("{:?}", e.0));
        String::from_utf8(answer.body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn answers_are_kept_per_client_until_forgotten() {
        let cache = ReadCache::new(Duration::from_secs(30));
        let (a, b) = (client(1), client(2));
        assert_eq!(
            body(&cache, a, 1).await,
            r#"{"success":true,"data":{"n":1}}"#
        );
        // Kept: a later computation is not run.
        assert_eq!(
            body(&cache, a, 2).await,
            r#"{"success":true,"data":{"n":1}}"#
        );
        // Another client has its own entry.
        assert_eq!(
            body(&cache, b, 3).await,
            r#"{"success":true,"data":{"n":3}}"#
        );
        cache.forget(a);
        assert_eq!(
            body(&cache, a, 4).await,
            r#"{"success":true,"data":{"n":4}}"#
        );
        assert_eq!(
            body(&cache, b, 5).await,
            r#"{"success":true,"data":{"n":3}}"#
        );
        cache.forget_all();
        assert_eq!(
            body(&cache, a, 6).await,
            r#"{"success":true,"data":{"n":6}}"#
        );
        assert_eq!(
            body(&cache, b, 7).await,
            r#"{"success":true,"data":{"n":7}}"#
        );
    }

    #[tokio::test]
    async fn a_computation_overtaken_by_a_forget_is_not_served_after_it() {
        for forget_all in [false, true] {
            let cache = ReadCache::new(Duration::from_secs(30));
            let a = client(1);
            let (read, reading) = tokio::sync::oneshot::channel::<()>();
            let (go, proceed) = tokio::sync::oneshot::channel::<()>();
            let slow = async {
                cache
                    .answer(a, ReadQuery::Dashboard, async move {
                        // The data is read here, before the change and its forget…
                        let data = computed(1);
                        read.send(()).unwrap();
                        // …and the answer is stored only after them.
                        proceed.await.unwrap();
                        data
                    })
                    .await
                    .unwrap_or_else(|e| panic!("{:?}", e.0))
            };
            let change = async {
                reading.await.unwrap();
                if forget_all {
                    cache.forget_all();
                } else {
                    cache.forget(a);
                }
                go.send(()).unwrap();
            };
            let (old, ()) = tokio::join!(slow, change);
            // The request that was under way gets its answer…
            assert_eq!(old.body, r#"{"success":true,"data":{"n":1}}"#);
            // …but no later request does.
            assert_eq!(
                body(&cache, a, 2).await,
                r#"{"success":true,"data":{"n":2}}"#
            );
        }
    }

    #[tokio::test]
    async fn errors_are_answered_as_they_are_not_kept_and_ttl_zero_keeps_nothing() {
        let cache = ReadCache::new(Duration::from_secs(30));
        let a = client(1);
        for error in [
            AppError::Unavailable {
                dependency: "postgres",
                retry_after: 5,
            },
            AppError::validation("month", "must not be in the future"),
        ] {
            let failed = cache
                .answer(a, ReadQuery::Dashboard, {
                    let error = error.clone();
                    async move { Err::<Computed<N>, _>(error) }
                })
                .await;
            let got = failed.err().unwrap().0;
            assert_eq!(
                (got.status(), got.to_string()),
                (error.status(), error.to_string())
            );
        }
        assert_eq!(
            body(&cache, a, 1).await,
            r#"{"success":true,"data":{"n":1}}"#
        );

        let off = ReadCache::new(Duration::ZERO);
        assert_eq!(body(&off, a, 1).await, r#"{"success":true,"data":{"n":1}}"#);
        assert_eq!(body(&off, a, 2).await, r#"{"success":true,"data":{"n":2}}"#);
    }

    #[tokio::test]
    async fn an_answer_expires_with_the_ttl_and_with_the_local_day() {
        let cache = ReadCache::new(Duration::from_secs(1));
        let a = client(1);
        assert_eq!(
            body(&cache, a, 1).await,
            r#"{"success":true,"data":{"n":1}}"#
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            body(&cache, a, 2).await,
            r#"{"success":true,"data":{"n":2}}"#
        );

        let cache = ReadCache::new(Duration::from_secs(30));
        let ends_soon = |n| async move {
            Ok(Computed {
                data: N { n },
                day_ends: Utc::now() + chrono::Duration::milliseconds(300),
            })
        };
        let first = cache.answer(a, ReadQuery::Dashboard, ends_soon(1)).await;
        assert_eq!(
            first.ok().unwrap().body,
            r#"{"success":true,"data":{"n":1}}"#
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let next = cache.answer(a, ReadQuery::Dashboard, ends_soon(2)).await;
        assert_eq!(
            next.ok().unwrap().body,
            r#"{"success":true,"data":{"n":2}}"#
        );
    }

    #[test]
    fn a_day_ends_at_the_next_local_midnight() {
        let berlin = chrono_tz::Europe::Berlin;
        let now = "2026-11-25T22:59:00Z".parse::<DateTime<Utc>>().unwrap(); // 23:59 in Berlin
        assert_eq!(
            day_end(berlin, now).to_rfc3339(),
            "2026-11-25T23:00:00+00:00"
        );
        let now = "2026-11-25T23:00:00Z".parse::<DateTime<Utc>>().unwrap(); // 00:00 the 26th
        assert_eq!(
            day_end(berlin, now).to_rfc3339(),
            "2026-11-26T23:00:00+00:00"
        );
        // Santiago skipped midnight of 2026-09-06 (00:00 → 01:00): that day begins at 01:00.
        let santiago = chrono_tz::America::Santiago;
        let now = "2026-09-06T02:00:00Z".parse::<DateTime<Utc>>().unwrap(); // 22:00 the 5th
        assert_eq!(
            day_end(santiago, now).to_rfc3339(),
            "2026-09-06T04:00:00+00:00"
        );
    }
}
