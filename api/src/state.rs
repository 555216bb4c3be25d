//! Everything a request handler may use, built once per process and shared behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use portal_shared::announce::{self, ChangedClients};
use portal_shared::ch::ClickHouse;
use portal_shared::config::Config;
use portal_shared::domain::auth::{JwtKeys, Role};
use portal_shared::domain::ids::{ClientId, StaffId};
use portal_shared::jobs;
use portal_shared::pg::api_keys::ApiKeyCache;
use portal_shared::throttle::Throttle;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

/// A staff member as seen by the auth middleware (cached for a few seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffStatus {
    pub client_id: ClientId,
    pub role: Role,
    pub active: bool,
}

pub struct AppState {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub ch: ClickHouse,
    pub jwt: JwtKeys,
    pub api_keys: ApiKeyCache,
    pub throttle: Throttle,
    /// Which watch events were accepted before (`POST /app/events` looks only those up in the
    /// ledger).
    pub seen: portal_shared::seen::SeenFilter,
    /// Staff id → status for 10 s. `portal-admin staff deactivate|set-role` announces the change on
    /// Redis and every instance drops the entry at once (`watch_announcements`); the lifetime is
    /// the fallback when an announcement is missed.
    pub staff: Cache<StaffId, Option<StaffStatus>>,
    /// The class catalogue (validation of events, titles in analytics).
    pub catalogue: portal_shared::pg::classes::Catalogue,
    /// Each client's dashboard, analytics, funnel, billing and member-list answers (see [`crate::reads`]).
    pub reads: crate::reads::ReadCache,
    /// Producer side of the watch-event queue.
    pub events: jobs::Queue<portal_shared::pipeline::WatchBatch>,
    /// Producer side of the export queue.
    pub exports: jobs::Queue<portal_shared::jobs::exports::ExportJob>,
    /// Where export files are.
    pub storage: portal_shared::storage::Storage,
}

pub type State = Arc<AppState>;

impl AppState {
    /// Builds the state. Connections are lazy: the API starts (and `/ready` says what is missing)
    /// even when a dependency is down.
    pub async fn new(config: Config) -> anyhow::Result<State> {
        portal_shared::domain::auth::set_hash_wait(config.password_hash_wait);
        // Reads and writes of requests are bounded by DATABASE_STATEMENT_TIMEOUT_MS and
        // CLICKHOUSE_MAX_EXECUTION_SECS (503 past them); migrations use unbounded connections.
        let db = portal_shared::pg::api_pool(&config)?;
        let redis = jobs::redis_lazy(config.redis_url.expose())?;
        let mut ch = ClickHouse::from_config(&config)
            .with_max_execution_time(config.clickhouse_max_execution);
        match tokio::time::timeout(Duration::from_secs(3), ch.detect_version()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "clickhouse not reachable at start-up; row validation stays off")
            }
            Err(_) => {
                tracing::warn!("clickhouse did not answer at start-up; row validation stays off")
            }
        }
        let events = jobs::Queue::open(redis.clone(), &config);
        let exports = jobs::Queue::open(redis.clone(), &config);
        let storage = portal_shared::storage::Storage::from_config(&config)?;
        if let Err(e) = storage.check().await {
            tracing::warn!(error = %e, "export storage does not answer; exports fail until it does");
        }
        Ok(Arc::new(Self {
            exports,
            storage,
            catalogue: portal_shared::pg::classes::Catalogue::default(),
            reads: crate::reads::ReadCache::new(config.read_cache_ttl),
            events,
            jwt: JwtKeys::new(config.jwt_secret.expose()),
            api_keys: ApiKeyCache::new(config.api_key_cache_ttl),
            throttle: Throttle::new(redis.clone(), config.redis_namespace.clone()),
            seen: portal_shared::seen::SeenFilter::open(redis.clone(), &config),
            staff: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(10))
                .build(),
            config: Arc::new(config),
            db,
            redis,
            ch,
        }))
    }
}

impl AppState {
    /// Publishes `payload` on `channel` (what `watch_announcements` of every API instance listens
    /// to), 3 s at most. A failure is logged, not returned: the change is already committed, and
    /// the other instances' cache lifetimes are the fallback.
    pub async fn announce(&self, channel: &str, payload: &str) {
        if let Err(e) =
            announce::publish(&self.redis, channel, payload, Duration::from_secs(3)).await
        {
            tracing::warn!(error = %e, channel, "announcement not published; other instances apply it when their cache entry expires");
        }
    }

    /// Drops cached answers that `changed` makes stale, in this instance only (what an
    /// announcement on `{ns}:clients:changed` does; `middleware::forget_reads_after_writes` also
    /// announces). A change of every client also reloads the class catalogue, whose titles
    /// analytics shows.
    pub fn forget_reads(&self, changed: &ChangedClients) {
        match changed {
            ChangedClients::All => {
                self.catalogue.invalidate();
                self.reads.forget_all();
            }
            ChangedClients::Some(ids) => {
                for id in ids {
                    self.reads.forget(*id);
                }
            }
        }
    }

    /// Forgets a staff member's cached status here and tells every other instance to.
    pub async fn announce_staff_change(&self, staff_id: StaffId) {
        self.staff.invalidate(&staff_id).await;
        let channel = portal_shared::pg::staff::change_channel(&self.config.redis_namespace);
        self.announce(&channel, &staff_id.to_string()).await;
    }

    /// Drops a revoked key from the key cache here and tells every other instance to.
    pub async fn announce_key_revoked(&self, hash: &[u8; 32]) {
        self.api_keys.invalidate(hash).await;
        let channel = portal_shared::pg::api_keys::revocation_channel(&self.config.redis_namespace);
        self.announce(&channel, &hex::encode(hash)).await;
    }
}
