//! Test harness: every test gets its own Postgres database (copied from a migrated template), its
//! own ClickHouse database, its own Redis namespace and its own tenants, so the suite runs in
//! parallel against the real services.

pub mod bench;

use std::collections::HashMap;
use std::sync::Arc;

use portal_api::State;
use portal_shared::config::Config;
use portal_shared::domain::auth::Role;
use portal_shared::domain::ids::{ApiKeyId, BatchId, ClientId, MemberId};
use portal_shared::pg::{api_keys, clients, staff};
use salvo::http::HeaderMap;
use salvo::test::{RequestBuilder, ResponseExt, TestClient};
use salvo::Service;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

pub fn admin_url() -> String {
    env_or(
        "TEST_DATABASE_URL",
        "postgres://portal:portal@127.0.0.1:5432/portal",
    )
}
pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379")
}
pub fn clickhouse_url() -> String {
    env_or("TEST_CLICKHOUSE_URL", "http://127.0.0.1:8123")
}

/// `host:port` of [`clickhouse_url`], for a [`Cuttable`] in front of it.
pub fn clickhouse_addr() -> String {
    let url = clickhouse_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// `TEST_CLICKHOUSE_CLUSTER`: run against this cluster of the `TEST_CLICKHOUSE_URL` server
/// (cluster mode; scripts/cluster-test.sh sets it).
pub fn clickhouse_cluster() -> Option<String> {
    std::env::var("TEST_CLICKHOUSE_CLUSTER")
        .ok()
        .filter(|c| !c.is_empty())
}

/// Keeps exports in the S3-compatible test store, under a prefix of this test's own
/// (`scripts/s3-test-server.sh` starts one; `TEST_S3_URL` and friends name another).
pub fn s3_vars(v: &mut HashMap<String, String>) {
    let prefix = format!("t-{}", Uuid::new_v4().simple());
    let bucket = env_or("TEST_S3_BUCKET", "portal-test");
    for (name, value) in [
        ("EXPORT_STORE", format!("s3://{bucket}/{prefix}")),
        (
            "AWS_ENDPOINT_URL",
            env_or("TEST_S3_URL", "http://127.0.0.1:4566"),
        ),
        ("AWS_REGION", env_or("TEST_S3_REGION", "us-east-1")),
        (
            "AWS_ACCESS_KEY_ID",
            env_or("TEST_S3_ACCESS_KEY_ID", "portal-test"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            env_or("TEST_S3_SECRET_ACCESS_KEY", "portal-test-secret"),
        ),
    ] {
        v.insert(name.into(), value);
    }
}

/// Name of the migrated template database for the current set of migrations.
fn template_name() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for m in portal_shared::pg::MIGRATOR.iter() {
        for b in m.checksum.iter() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("portal_tpl_{h:016x}")
}

/// Creates a fresh, migrated database and returns its name.
pub async fn fresh_database() -> String {
    let admin_opts: PgConnectOptions = admin_url().parse().expect("TEST_DATABASE_URL");
    let mut admin = PgConnection::connect_with(&admin_opts)
        .await
        .expect("connect to Postgres (is scripts/services.sh done?)");
    let tpl = template_name();
    admin
        .execute("SELECT pg_advisory_lock(72707271)")
        .await
        .unwrap();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&tpl)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if exists.is_none() {
        let building = format!("{tpl}_building");
        admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"
            )))
            .await
            .unwrap();
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE \"{building}\"")))
            .await
            .unwrap();
        {
            let mut c = PgConnection::connect_with(&admin_opts.clone().database(&building))
                .await
                .unwrap();
            portal_shared::pg::MIGRATOR.run(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        admin
            .execute(AssertSqlSafe(format!(
                "ALTER DATABASE \"{building}\" RENAME TO \"{tpl}\""
            )))
            .await
            .unwrap();
    }
    admin
        .execute("SELECT pg_advisory_unlock(72707271)")
        .await
        .unwrap();
    let name = format!("portal_t_{}", Uuid::new_v4().simple());
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{tpl}\""
        )))
        .await
        .unwrap();
    admin.close().await.ok();
    name
}

pub fn database_url(name: &str) -> String {
    let base = admin_url();
    match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("TEST_DATABASE_URL has no database part"),
    }
}

/// A response as tests see it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The fields the failure envelope's `details` name, in order.
    pub fn error_fields(&self) -> Vec<&str> {
        self.body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect()
    }

    /// Asserts an export was accepted (202) and returns its job id.
    #[track_caller]
    pub fn accepted_job(&self) -> String {
        self.assert_status(202);
        self.body["data"]["jobId"].as_str().unwrap().to_string()
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts the SPEC failure envelope with `code`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        self.assert_status(status);
        assert_eq!(self.body["success"], false, "{}", self.text);
        assert_eq!(self.error_code(), code, "{}", self.text);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        self
    }
}

pub struct TestApp {
    pub state: State,
    pub service: Arc<Service>,
    pub db: PgPool,
    pub db_name: String,
    pub namespace: String,
    pub vars: HashMap<String, String>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub struct Tenant {
    pub client_id: ClientId,
    pub slug: String,
    pub admin_email: String,
    pub viewer_email: String,
    pub api_key: String,
    pub api_key_id: ApiKeyId,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns an app with its own database, ClickHouse database and Redis namespace;
    /// `tweak` may change any environment variable before the configuration is read.
    pub async fn spawn_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let db_name = fresh_database().await;
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("DATABASE_URL".into(), database_url(&db_name));
        vars.insert("DATABASE_MAX_CONNECTIONS".into(), "10".into());
        vars.insert("REDIS_URL".into(), redis_url());
        vars.insert("REDIS_NAMESPACE".into(), db_name.clone());
        vars.insert("CLICKHOUSE_URL".into(), clickhouse_url());
        vars.insert("CLICKHOUSE_DATABASE".into(), db_name.clone());
        // scripts/cluster-test.sh runs tests against a ClickHouse cluster.
        if let Some(cluster) = clickhouse_cluster() {
            vars.insert("CLICKHOUSE_CLUSTER".into(), cluster);
        }
        vars.insert(
            "JWT_SECRET".into(),
            portal_shared::domain::auth::random_secret("test-"),
        );
        vars.insert("MIGRATE_ON_START".into(), "false".into());
        // Every test of this process shares the hashing slots: wait for them rather than 503.
        vars.insert("PASSWORD_HASH_WAIT_MS".into(), "60000".into());
        vars.insert("WORKER_HEARTBEAT_SECS".into(), "1".into());
        vars.insert("WORKER_MISSED_HEARTBEATS".into(), "3".into());
        vars.insert("SHUTDOWN_TIMEOUT_SECS".into(), "5".into());
        vars.insert("EVENTS_FLUSH_MS".into(), "100".into());
        // A small seen-events filter per test (the product's 64 MB per generation would be
        // allocated in Redis for every test's namespace).
        vars.insert("EVENTS_SEEN_FILTER_MB".into(), "1".into());
        vars.insert(
            "EXPORT_DIR".into(),
            std::env::temp_dir()
                .join("portal-tests")
                .join(&db_name)
                .display()
                .to_string(),
        );
        tweak(&mut vars);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let state = portal_api::AppState::new(config).await.expect("state");
        let db = state.db.clone();
        if vars.get("CLICKHOUSE_URL") == Some(&clickhouse_url()) {
            let migrations = portal_shared::ch::embedded().unwrap();
            portal_shared::ch::migrate(&state.ch, &db, &migrations)
                .await
                .expect("clickhouse migrations");
        }
        let watcher = tokio::spawn(portal_api::watch_announcements(state.clone()));
        let service = Arc::new(portal_api::service(state.clone()));
        Self {
            state,
            service,
            db,
            namespace: db_name.clone(),
            db_name,
            vars,
            watcher,
        }
    }

    /// Like [`TestApp::spawn`], with exports kept in the S3-compatible test store (see [`s3_vars`]).
    pub async fn spawn_s3() -> Self {
        Self::spawn_with(s3_vars).await
    }

    pub fn config(&self) -> Config {
        Config::from_lookup(|k| self.vars.get(k).cloned()).unwrap()
    }

    pub fn url(path: &str) -> String {
        format!("http://portal.test{path}")
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        TestClient::get(Self::url(path))
    }
    pub fn post(&self, path: &str) -> RequestBuilder {
        TestClient::post(Self::url(path))
    }
    pub fn put(&self, path: &str) -> RequestBuilder {
        TestClient::put(Self::url(path))
    }
    pub fn delete(&self, path: &str) -> RequestBuilder {
        TestClient::delete(Self::url(path))
    }
    pub fn patch(&self, path: &str) -> RequestBuilder {
        TestClient::patch(Self::url(path))
    }

    pub async fn send(&self, req: RequestBuilder) -> Resp {
        let mut res = req.send(&*self.service).await;
        let text = res.take_string().await.unwrap_or_default();
        Resp {
            status: res.status_code.map(|s| s.as_u16()).unwrap_or(200),
            headers: res.headers().clone(),
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// A partner with an admin, a viewer (both with [`PASSWORD`]) and an API key.
    pub async fn tenant(&self) -> Tenant {
        let slug = format!("t-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let client = clients::create(
            &self.db,
            &clients::NewClient {
                name: format!("Studio {slug}"),
                slug: slug.clone(),
                timezone: "Europe/Berlin".into(),
                branding: serde_json::json!({"primaryColor": "#0E7C86"}),
                features: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
        let admin_email = format!("admin@{slug}.example");
        let viewer_email = format!("viewer@{slug}.example");
        for (email, role) in [(&admin_email, Role::Admin), (&viewer_email, Role::Viewer)] {
            staff::create(
                &self.db,
                staff::NewStaff {
                    client_id: client.id,
                    email,
                    name: "Test Staff",
                    password: PASSWORD,
                    role,
                },
            )
            .await
            .unwrap();
        }
        let key = api_keys::create(&self.db, client.id, "test").await.unwrap();
        Tenant {
            client_id: client.id,
            slug,
            admin_email,
            viewer_email,
            api_key: key.key,
            api_key_id: key.id,
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.send(
            self.post("/partner-auth/login")
                .json(&serde_json::json!({"email": email, "password": password})),
        )
        .await
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn tokens(&self, email: &str) -> (String, String) {
        let r = self.login(email, PASSWORD).await;
        r.assert_status(200);
        (
            r.body["data"]["accessToken"].as_str().unwrap().to_string(),
            r.body["data"]["refreshToken"].as_str().unwrap().to_string(),
        )
    }
}

/// A binary of this workspace beside the running test or bench (tests run from
/// target/<profile>/deps/, benches from target/<profile>/).
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .find(|b| b.exists())
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing beside {}: build it first (scripts/test.sh runs `cargo build --bins`)",
                exe.display()
            )
        })
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS:` now, `VmHWM:` the peak); 0 when unreadable.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Adds `Authorization: Bearer`.
pub fn bearer(req: RequestBuilder, token: &str) -> RequestBuilder {
    req.add_header("authorization", format!("Bearer {token}"), true)
}

/// Adds `X-API-Key`.
pub fn key(req: RequestBuilder, key: &str) -> RequestBuilder {
    req.add_header("x-api-key", key, true)
}

/// A signed-in partner: its tenant and both tokens.
pub struct Partner {
    pub t: Tenant,
    pub admin: String,
    pub viewer: String,
}

impl TestApp {
    pub async fn partner(&self) -> Partner {
        let t = self.tenant().await;
        let (admin, _) = self.tokens(&t.admin_email).await;
        let (viewer, _) = self.tokens(&t.viewer_email).await;
        Partner { t, admin, viewer }
    }

    /// A partner request with the admin token and the partner's key (what voucher routes need).
    pub fn as_admin(&self, p: &Partner, req: RequestBuilder) -> RequestBuilder {
        key(bearer(req, &p.admin), &p.t.api_key)
    }

    /// Generates vouchers through the API and returns their JSON objects.
    pub async fn vouchers(&self, p: &Partner, quantity: u32, prefix: Option<&str>) -> Vec<Value> {
        let mut body = serde_json::json!({ "quantity": quantity });
        if let Some(pre) = prefix {
            body["prefix"] = pre.into();
        }
        let r = self
            .send(self.as_admin(p, self.post("/partner/vouchers")).json(&body))
            .await;
        r.assert_status(201);
        r.body["data"]["vouchers"].as_array().unwrap().clone()
    }

    /// Registers a member with a fresh voucher and returns (member id, member access token).
    pub async fn member(&self, p: &Partner, email: &str, name: &str) -> (String, String) {
        let v = self.vouchers(p, 1, None).await;
        let r = self
            .send(
                key(self.post("/auth/register"), &p.t.api_key).json(&serde_json::json!({
                    "voucherCode": v[0]["code"], "email": email, "password": PASSWORD, "name": name,
                })),
            )
            .await;
        r.assert_status(201);
        (
            r.body["data"]["member"]["id"].as_str().unwrap().to_string(),
            r.body["data"]["accessToken"].as_str().unwrap().to_string(),
        )
    }

    /// A pool of one connection to this test's database, so that the activity statistics a test
    /// reads through it ([`flushed_statistics`]) are of its own statements only.
    pub async fn single_connection(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&database_url(&self.db_name))
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &'static str, client_id: ClientId) -> i64 {
        sqlx::query_scalar(sql)
            .bind(client_id)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Views counted in the member summaries of a client (all its members together).
    pub async fn class_views(&self, client_id: ClientId) -> i64 {
        self.count(COUNTED, client_id).await
    }

    /// Rows of a client in ClickHouse's `watch_events`.
    pub async fn ch_rows(&self, client_id: ClientId) -> u64 {
        self.state
            .ch
            .client
            .query("SELECT count() FROM watch_events WHERE client_id = ?")
            .bind(client_id.to_string())
            .fetch_one()
            .await
            .unwrap()
    }
}

/// A worker running in this process against the app's queues.
pub struct RunningWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningWorker {
    /// Stops gracefully and returns the worker's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(20), &mut self.handle)
            .await
            .expect("worker stops within 20 s")
            .expect("worker task")
    }
}

impl TestApp {
    /// Starts a worker with this app's configuration, optionally changed by `tweak`.
    pub async fn worker_with(
        &self,
        tweak: impl FnOnce(&mut HashMap<String, String>),
    ) -> RunningWorker {
        let mut vars = self.vars.clone();
        tweak(&mut vars);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let state = portal_worker::WorkerState::new(config).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(portal_worker::run_until(state, async move {
            let _ = rx.await;
        }));
        RunningWorker {
            stop: Some(tx),
            handle,
        }
    }

    /// The real `portal-worker` process (built beside the running test or bench binary) with this
    /// app's configuration, warnings-only logs and `extra` variables.
    pub fn worker_process(&self, extra: &[(&str, &str)]) -> tokio::process::Child {
        tokio::process::Command::new(binary("portal-worker"))
            .env_clear()
            .envs(self.vars.iter())
            .env("RUST_LOG", "warn")
            .envs(extra.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// Starts the real `portal-api` binary on this app's configuration (plus `extra`) on a free
    /// 127.0.0.1 port and waits until it answers; returns the process and its base URL.
    pub async fn api_process(&self, extra: &[(&str, &str)]) -> (tokio::process::Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let child = tokio::process::Command::new(binary("portal-api"))
            .env_clear()
            .envs(self.vars.iter())
            .env("RUST_LOG", "warn")
            .env("PORTAL_BIND", format!("127.0.0.1:{port}"))
            .envs(extra.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if http
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return (child, base);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("portal-api did not answer on {base}");
    }

    pub async fn worker(&self) -> RunningWorker {
        self.worker_with(|_| {}).await
    }

    /// Imports a small catalogue: yoga-1, yoga-2 (Yoga), hiit-1 (HIIT), pilates-1 (Pilates).
    pub async fn catalogue(&self) {
        let csv = "id,title,category,instructor,durationMinutes\n\
                   yoga-1,Morning Flow,Yoga,Ana,30\nyoga-2,Evening Calm,Yoga,Ana,20\n\
                   hiit-1,Burn,HIIT,Bo,25\npilates-1,Core,Pilates,Cy,40\n";
        portal_shared::pg::classes::import_csv(&self.db, csv.as_bytes())
            .await
            .unwrap();
        // What `portal-admin classes import` announces: the catalogue and every cached answer go.
        self.state
            .forget_reads(&portal_shared::announce::ChangedClients::All);
    }

    /// Posts watch events as a member.
    pub async fn post_events(&self, p: &Partner, member_token: &str, events: Value) -> Resp {
        self.send(
            bearer(key(self.post("/app/events"), &p.t.api_key), member_token)
                .json(&serde_json::json!({ "events": events })),
        )
        .await
    }

    /// Waits until `sql` (bound to `client_id`) returns `want`, up to `secs` seconds.
    pub async fn wait_for_count(
        &self,
        sql: &'static str,
        client_id: ClientId,
        want: i64,
        secs: u64,
    ) -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let n = self.count(sql, client_id).await;
            if n == want || std::time::Instant::now() > deadline {
                return n;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl TestApp {
    /// This test's depth of `J`'s queue.
    pub async fn queue_depth<J: portal_shared::jobs::Job>(
        &self,
    ) -> portal_shared::jobs::QueueDepth {
        let mut conn = self.state.redis.clone();
        portal_shared::jobs::queue_depth(&mut conn, &self.namespace, J::QUEUE)
            .await
            .unwrap()
    }

    /// Waits until no job of `J` is waiting or running, i.e. every job queued so far has been
    /// consumed (or given up), at most `secs`; panics otherwise. Returns the depth then.
    pub async fn wait_queue_drained<J: portal_shared::jobs::Job>(
        &self,
        secs: u64,
    ) -> portal_shared::jobs::QueueDepth {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let d = self.queue_depth::<J>().await;
            if d.pending == 0 && d.running == 0 {
                return d;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "queue {} not drained within {secs} s: {d:?}",
                J::QUEUE
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until `J`'s queue has finished more than `done` jobs in all, at most `secs`; panics
    /// otherwise.
    pub async fn wait_queue_done_beyond<J: portal_shared::jobs::Job>(&self, done: u64, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let d = self.queue_depth::<J>().await;
            if d.done > done {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "queue {} finished no further job within {secs} s: {d:?}",
                J::QUEUE
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl TestApp {
    /// A second API instance of this app (same database, token secret and Redis namespace) that
    /// reaches Redis through a [`Cuttable`] proxy, returned cut-ready: for Redis outages.
    pub async fn sibling_behind_redis_proxy(&self) -> (TestApp, Cuttable) {
        let proxy = Cuttable::new("127.0.0.1:6379").await;
        let sibling = TestApp::spawn_with(|v| {
            v.insert("DATABASE_URL".into(), self.vars["DATABASE_URL"].clone());
            v.insert("JWT_SECRET".into(), self.vars["JWT_SECRET"].clone());
            v.insert("REDIS_NAMESPACE".into(), self.namespace.clone());
            v.insert("REDIS_URL".into(), format!("redis://{}", proxy.addr));
        })
        .await;
        (sibling, proxy)
    }

    /// Exactly once: waits until `n` of the client's events have landed and the events queue is
    /// drained (every batch queued so far, duplicates and redeliveries included, has been
    /// consumed, so nothing more can land), then checks the Postgres summaries and ClickHouse
    /// each count every event once.
    pub async fn assert_counted_once(&self, client_id: ClientId, n: i64, secs: u64) {
        assert_eq!(self.wait_for_count(LANDED, client_id, n, secs).await, n);
        self.wait_queue_drained::<portal_shared::pipeline::WatchBatch>(secs)
            .await;
        assert_eq!(self.count(LANDED, client_id).await, n, "receipts");
        assert_eq!(self.class_views(client_id).await, n, "class views");
        assert_eq!(self.ch_rows(client_id).await, n as u64, "ClickHouse rows");
    }

    /// Waits until at least `n` API instances listen on the Redis channel `channel` (their
    /// announcement listeners have subscribed), at most 5 s; panics otherwise.
    pub async fn wait_listeners(&self, channel: &str, n: i64) {
        let mut conn = self.state.redis.clone();
        for _ in 0..100 {
            let (_, subs): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(channel)
                .query_async::<Vec<(String, i64)>>(&mut conn)
                .await
                .unwrap()
                .remove(0);
            if subs >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fewer than {n} instances listen on {channel}");
    }

    /// Sends `request()` until it answers `want` (at most `secs`), and returns the last status.
    pub async fn send_until(
        &self,
        want: u16,
        secs: u64,
        request: impl Fn() -> RequestBuilder,
    ) -> u16 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let status = self.send(request()).await.status;
            if status == want || std::time::Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Rows of `sql` (a query of `pg_stat_*` views) after the statistics of `one`'s connection
/// ([`TestApp::single_connection`]) have been flushed to them.
pub async fn flushed_statistics<T>(one: &sqlx::PgPool, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(one)
        .await
        .unwrap();
    sqlx::query_as(sql).fetch_all(one).await.unwrap()
}

/// Events of a client counted in its member summaries (what the dashboard shows): cheap enough to
/// poll while events arrive, unlike [`LANDED`], which joins the whole ledger.
pub const COUNTED: &str =
    "SELECT COALESCE(sum(class_views), 0)::bigint FROM members WHERE client_id = $1";

/// Landed (counted) events of a client: receipts whose batch has landed.
pub const LANDED: &str = "SELECT count(*) FROM watch_event_receipts r
     JOIN landed_watch_batches b ON b.batch_id = r.batch_id WHERE r.client_id = $1";

/// One watch event as the app sends it.
pub fn event(class_id: &str, started_at: chrono::DateTime<chrono::Utc>, seconds: u32) -> Value {
    serde_json::json!({
        "eventId": Uuid::new_v4(),
        "classId": class_id,
        "startedAt": started_at.to_rfc3339(),
        "watchedSeconds": seconds,
    })
}

/// A TCP proxy in front of a real service that a test can cut and restore, to simulate the
/// service going away without stopping the shared server.
pub struct Cuttable {
    pub addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    pub async fn new(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let target = target.to_string();
        let flag = up.clone();
        let refusals = refused.clone();
        let task = tokio::spawn(async move {
            let mut conns: Vec<tokio::task::JoinHandle<()>> = Vec::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(inbound);
                    for c in conns.drain(..) {
                        c.abort();
                    }
                    continue;
                }
                let target = target.clone();
                let flag = flag.clone();
                conns.push(tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let watch = async {
                        while flag.load(std::sync::atomic::Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = watch => {} }
                }));
            }
        });
        Self {
            addr,
            up,
            refused,
            task,
        }
    }

    /// Connections refused while cut, so far.
    pub fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until more than `seen` connections have been refused (someone tried the service
    /// while it was away), at most `secs`; panics otherwise.
    pub async fn wait_refused_beyond(&self, seen: usize, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while self.refused() <= seen {
            assert!(
                std::time::Instant::now() < deadline,
                "nobody tried the cut service within {secs} s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestApp {
    /// Queues a watch batch directly (as the API would, without its 30-day age check): for tests
    /// that need events in earlier months.
    pub async fn push_batch(
        &self,
        client_id: ClientId,
        member_id: MemberId,
        events: Vec<portal_shared::pipeline::WatchEvent>,
    ) {
        self.state
            .events
            .enqueue(portal_shared::pipeline::WatchBatch {
                batch_id: BatchId::new_v7(),
                client_id,
                member_id,
                received_at: chrono::Utc::now(),
                events,
                seen_before: false,
            })
            .await
            .unwrap();
    }

    /// `GET /partner/exports/{job}/download` as the holder of `token`.
    pub async fn download_export(&self, token: &str, job: &str) -> Resp {
        self.send(bearer(
            self.get(&format!("/partner/exports/{job}/download")),
            token,
        ))
        .await
    }

    /// Polls an export until it is completed or failed; returns its last status body.
    pub async fn wait_export(&self, token: &str, job: &str, secs: u64) -> Value {
        self.wait_export_status(token, job, &["completed", "failed"], secs)
            .await
    }

    /// Polls an export until its status is one of `statuses` (or `secs` pass); returns its last
    /// status body.
    pub async fn wait_export_status(
        &self,
        token: &str,
        job: &str,
        statuses: &[&str],
        secs: u64,
    ) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let r = self
                .send(bearer(self.get(&format!("/partner/exports/{job}")), token))
                .await;
            let status = r.body["data"]["status"].as_str().unwrap_or("");
            if statuses.contains(&status) || std::time::Instant::now() > deadline {
                return r.body["data"].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// One watch event for [`TestApp::push_batch`].
pub fn watch(
    class_id: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    seconds: u32,
) -> portal_shared::pipeline::WatchEvent {
    portal_shared::pipeline::WatchEvent {
        event_id: Uuid::new_v4(),
        class_id: class_id.into(),
        started_at,
        watched_seconds: seconds,
    }
}

impl TestApp {
    /// Serves this app's API on a real 127.0.0.1 port, for tests about the TCP peer (client
    /// addresses, proxies); returns its base URL. The server lives as long as the test's runtime.
    pub async fn serve_tcp(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener).unwrap();
        let service = portal_api::service(self.state.clone());
        tokio::spawn(async move { salvo::Server::new(acceptor).serve(service).await });
        format!("http://{addr}")
    }
}

/// A whole-number setting of a bench from the environment, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile (0 to 1) of sorted figures; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// First day of the month `back` months before the one of `today`.
pub fn month_start(today: chrono::NaiveDate, back: u32) -> chrono::NaiveDate {
    use chrono::Datelike;
    let mut y = today.year();
    let mut m = today.month() as i32 - back as i32;
    while m <= 0 {
        m += 12;
        y -= 1;
    }
    chrono::NaiveDate::from_ymd_opt(y, m as u32, 1).unwrap()
}

/// An instant given as a Berlin wall-clock time (the test tenants' timezone).
pub fn berlin(d: chrono::NaiveDate, h: u32, min: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono_tz::Europe::Berlin
        .from_local_datetime(&d.and_hms_opt(h, min, 0).unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// `month=…&year=…` naming the month of `day`.
pub fn month_query(day: impl chrono::Datelike) -> String {
    format!("month={}&year={}", day.month(), day.year())
}

impl TestApp {
    /// `GET /partner/billing` for the month of `day` as the holder of `token`.
    pub async fn billing(&self, token: &str, day: impl chrono::Datelike) -> Resp {
        self.send(bearer(
            self.get(&format!("/partner/billing?{}", month_query(day))),
            token,
        ))
        .await
    }

    /// `GET /partner/billing/export` for the month of `day` as the holder of `token`.
    pub async fn billing_export(&self, token: &str, day: impl chrono::Datelike) -> Resp {
        self.send(bearer(
            self.get(&format!("/partner/billing/export?{}", month_query(day))),
            token,
        ))
        .await
    }

    /// Members of a client.
    pub async fn member_count(&self, client_id: ClientId) -> i64 {
        self.count(
            "SELECT count(*) FROM members WHERE client_id = $1",
            client_id,
        )
        .await
    }

    /// Refresh tokens of a client not revoked yet.
    pub async fn live_refresh_tokens(&self, client_id: ClientId) -> i64 {
        self.count(
            "SELECT count(*) FROM refresh_tokens WHERE client_id = $1 AND revoked_at IS NULL",
            client_id,
        )
        .await
    }

    /// Registers a member (see [`TestApp::member`]) and returns only its id.
    pub async fn member_id(&self, p: &Partner, email: &str, name: &str) -> MemberId {
        let (id, _) = self.member(p, email, name).await;
        id.parse().unwrap()
    }

    /// Moves a voucher's expiry `ago` (a Postgres interval such as `1 day`) into the past.
    pub async fn expire_voucher(&self, voucher: &Value, ago: &str) {
        sqlx::query("UPDATE vouchers SET expires_at = now() - $2::interval WHERE id = $1")
            .bind(voucher["id"].as_i64().unwrap())
            .bind(ago)
            .execute(&self.db)
            .await
            .unwrap();
    }

    /// `DELETE /partner/vouchers/{id}` (revokes the voucher) as the partner's admin.
    pub async fn revoke_voucher(&self, p: &Partner, voucher: &Value) -> Resp {
        self.send(self.as_admin(
            p,
            self.delete(&format!("/partner/vouchers/{}", voucher["id"])),
        ))
        .await
    }

    /// Writes `rows` straight into ClickHouse's `watch_events`, bypassing the queue.
    pub async fn insert_ch_events(
        &self,
        rows: impl IntoIterator<Item = portal_shared::pipeline::ChEvent>,
    ) {
        let mut insert = self
            .state
            .ch
            .client
            .insert::<portal_shared::pipeline::ChEvent>("watch_events")
            .await
            .unwrap();
        for row in rows {
            insert.write(&row).await.unwrap();
        }
        insert.end().await.unwrap();
    }
}
