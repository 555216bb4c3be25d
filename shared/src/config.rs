//! Configuration from the environment (and `.env`, loaded by the binaries before calling
//! [`Config::from_env`]). Every problem is reported on its own line naming the variable, and
//! secrets never appear in `Debug` output.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// What `Debug` shows in place of a secret.
pub const REDACTED: Redacted = Redacted;

/// Prints as `***`.
#[derive(Clone, Copy)]
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A value that must never be printed (passwords, signing keys, URLs with credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Connection settings of an S3-compatible export store, from the variables every S3 tool reads
/// (read only when `EXPORT_STORE` is set). Without keys, `object_store` looks for container,
/// web-identity or instance credentials. An `http://` endpoint (MinIO, a local test server) allows
/// plain HTTP.
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT`): a non-AWS service such as MinIO, R2 or Ceph.
    pub endpoint: Option<String>,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`: `bucket.host` instead of `host/bucket` addressing
    /// (with `AWS_ENDPOINT_URL`, give the endpoint with the bucket in its host name).
    pub virtual_hosted_style: bool,
    /// Further settings passed to `object_store` as they are ([`S3_PASSTHROUGH`]).
    pub other: Vec<(String, String)>,
}

/// `AWS_*` variables handed to `object_store` unchanged: credential discovery (containers, web
/// identity, instance metadata), encryption and request options. Nothing else of the process
/// environment is read, so the configuration is the whole truth.
pub const S3_PASSTHROUGH: &[&str] = &[
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_METADATA_ENDPOINT",
    "AWS_IMDSV1_FALLBACK",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
    "AWS_SSE_BUCKET_KEY_ENABLED",
    "AWS_REQUEST_PAYER",
    "AWS_CHECKSUM_ALGORITHM",
    "AWS_UNSIGNED_PAYLOAD",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub redis_url: Secret,
    /// Prefix of every Redis key the product writes (queues, throttles): lets several deployments or
    /// test runs share one Redis without seeing each other.
    pub redis_namespace: String,
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    pub clickhouse_user: String,
    pub clickhouse_password: Secret,
    /// `CLICKHOUSE_CLUSTER`: the ClickHouse cluster (a `remote_servers` name) the tables live on.
    /// Unset: one server, plain MergeTree tables. Set: replicated local tables and Distributed
    /// tables under the usual names, created `ON CLUSTER` (see `ch::cluster`).
    pub clickhouse_cluster: Option<String>,
    /// `CLICKHOUSE_INSERT_QUORUM` (cluster mode only; default 2, 1–9): how many replicas of a
    /// shard hold an insert's rows before it returns. 1 turns the quorum off.
    pub clickhouse_insert_quorum: u32,
    pub jwt_secret: Secret,
    pub bind: SocketAddr,
    pub export_dir: PathBuf,
    /// `s3://bucket[/prefix]` to keep exports in S3-compatible storage instead of `export_dir`.
    pub export_store: Option<String>,
    /// How to reach that store (the usual `AWS_*` variables).
    pub s3: S3Settings,
    pub log_format: LogFormat,
    /// How long a looked-up API key (or its absence) is trusted before Postgres is asked again.
    pub api_key_cache_ttl: Duration,
    /// The longest an API instance serves a cached dashboard, analytics, funnel, billing or member-list answer
    /// without having heard that the client's data changed (the fallback for a missed
    /// announcement); zero turns the cache off.
    pub read_cache_ttl: Duration,
    /// Worker heartbeat interval and how many missed beats mark a worker dead (its tasks re-queued).
    pub worker_heartbeat: Duration,
    pub worker_missed_heartbeats: u32,
    /// Time a process waits for in-flight requests / jobs on SIGTERM.
    pub shutdown_timeout: Duration,
    /// Apply migrations when api/worker start (Postgres and ClickHouse).
    pub migrate_on_start: bool,
    /// The worker inserts buffered watch events into ClickHouse when this many rows are waiting…
    pub events_flush_rows: usize,
    /// …or when the oldest has waited this long.
    pub events_flush_interval: Duration,
    /// Watch-event jobs one worker process holds at once (they wait in the insert buffer).
    pub events_concurrency: usize,
    /// Landings one worker process runs at once: while one lands, the next gathers (and may
    /// land beside it).
    pub events_landers: usize,
    /// Megabytes of Redis per 35-day generation of the seen-events filter (`crate::seen`); two
    /// generations are kept. 0 turns it off: every accepted event is looked up in the ledger.
    pub events_seen_filter_mb: u32,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies, load balancers). Empty: the TCP
    /// peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a password check waits for a free hashing slot (one per core) before answering 503.
    pub password_hash_wait: Duration,
    /// The built partner portal (`web/dist`), served at `/`.
    pub web_dir: PathBuf,
    /// Watch events one member may send per minute (`/app/events`); 0 turns the limit off.
    pub member_events_per_minute: u32,
    /// Postgres `statement_timeout` of the API's connections: a statement running (or waiting for
    /// a lock) longer is cancelled by the server and the request answers 503. The worker and
    /// `portal-admin` have no limit (exports and landings may run long).
    pub database_statement_timeout: Duration,
    /// ClickHouse `max_execution_time` of the API's queries (whole seconds; 18.16 takes no
    /// fractions): the server stops a longer query and the request answers 503.
    pub clickhouse_max_execution: Duration,
}

/// All problems found in the environment, one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "configuration error: {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    get: &'a F,
    errors: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str) -> String {
        match self.raw(name) {
            Some(v) => v,
            None => {
                self.errors.push(format!("{name} is not set"));
                String::new()
            }
        }
    }

    fn url(&mut self, name: &str, schemes: &[&str], default: Option<&str>) -> String {
        let value = match (self.raw(name), default) {
            (Some(v), _) => v,
            (None, Some(d)) => return d.to_string(),
            (None, None) => {
                self.errors.push(format!("{name} is not set"));
                return String::new();
            }
        };
        let ok = schemes.iter().any(|s| {
            value
                .strip_prefix(s)
                .and_then(|rest| rest.strip_prefix("://"))
                .is_some_and(|rest| !rest.is_empty())
        });
        if !ok {
            self.errors.push(format!(
                "{name} must be a URL starting with {}",
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        value
    }

    fn parse<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        match self.raw(name) {
            None => default,
            Some(v) => match v.parse() {
                Ok(x) => x,
                Err(_) => {
                    self.errors
                        .push(format!("{name} must be {what} (got {v:?})"));
                    default
                }
            },
        }
    }

    /// A number within `min..=max`; `unit` follows the bounds in the message (e.g. " seconds").
    fn ranged<T>(&mut self, name: &str, default: T, min: T, max: T, what: &str, unit: &str) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let v: T = self.parse(name, default, what);
        if v < min || v > max {
            self.errors.push(format!(
                "{name} must be between {min} and {max}{unit} (got {v})"
            ));
        }
        v
    }

    fn seconds(&mut self, name: &str, default: u64, min: u64, max: u64) -> Duration {
        Duration::from_secs(self.ranged(
            name,
            default,
            min,
            max,
            "a whole number of seconds",
            " seconds",
        ))
    }

    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).map(|v| v.to_ascii_lowercase()) {
            None => default,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => {
                self.errors
                    .push(format!("{name} must be true or false (got {v:?})"));
                default
            }
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration through `get` (the environment in production, a map in tests).
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigErrors> {
        let mut r = Reader {
            get: &get,
            errors: Vec::new(),
        };
        let database_url = r.url("DATABASE_URL", &["postgres", "postgresql"], None);
        let redis_url = r.url("REDIS_URL", &["redis", "rediss"], None);
        let clickhouse_url = r.url("CLICKHOUSE_URL", &["http", "https"], None);
        let clickhouse_database = r
            .raw("CLICKHOUSE_DATABASE")
            .unwrap_or_else(|| "portal".into());
        if !is_identifier(&clickhouse_database) {
            r.errors.push(format!(
                "CLICKHOUSE_DATABASE must be letters, digits and underscores (got {clickhouse_database:?})"
            ));
        }
        let clickhouse_user = r.raw("CLICKHOUSE_USER").unwrap_or_else(|| "default".into());
        let clickhouse_password = r.raw("CLICKHOUSE_PASSWORD").unwrap_or_default();
        let clickhouse_cluster = r.raw("CLICKHOUSE_CLUSTER").filter(|c| !c.is_empty());
        if let Some(c) = &clickhouse_cluster {
            if !is_identifier(c) {
                r.errors.push(format!(
                    "CLICKHOUSE_CLUSTER must be letters, digits and underscores (got {c:?})"
                ));
            }
        }
        let jwt_secret = r.required("JWT_SECRET");
        if !jwt_secret.is_empty() {
            if let Err(why) = check_jwt_secret(&jwt_secret) {
                r.errors.push(format!("JWT_SECRET {why}"));
            }
        }
        let bind = r.parse(
            "PORTAL_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address like 127.0.0.1:8080",
        );
        let export_dir = PathBuf::from(
            r.raw("EXPORT_DIR")
                .unwrap_or_else(|| "./data/exports".into()),
        );
        let web_dir = PathBuf::from(r.raw("WEB_DIR").unwrap_or_else(|| "./web/dist".into()));
        let export_store = r.raw("EXPORT_STORE");
        if let Some(s) = &export_store {
            if !s.starts_with("s3://") || s.len() <= 5 {
                r.errors.push(format!(
                    "EXPORT_STORE must look like s3://bucket[/prefix] (got {s:?})"
                ));
            }
        }
        // The AWS_* variables matter only with an S3 store (a stray one must not stop a
        // deployment that keeps exports in a directory).
        let s3 = if export_store.is_some() {
            let s3 = S3Settings {
                endpoint: ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                    .into_iter()
                    .find(|name| r.raw(name).is_some())
                    .map(|name| r.url(name, &["http", "https"], None)),
                region: r.raw("AWS_REGION").or_else(|| r.raw("AWS_DEFAULT_REGION")),
                access_key_id: r.raw("AWS_ACCESS_KEY_ID"),
                secret_access_key: r.raw("AWS_SECRET_ACCESS_KEY").map(Secret::new),
                session_token: r.raw("AWS_SESSION_TOKEN").map(Secret::new),
                virtual_hosted_style: r.flag("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", false),
                other: S3_PASSTHROUGH
                    .iter()
                    .filter_map(|name| r.raw(name).map(|v| (name.to_string(), v)))
                    .collect(),
            };
            if s3.access_key_id.is_some() != s3.secret_access_key.is_some() {
                r.errors.push(
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".to_string(),
                );
            }
            s3
        } else {
            S3Settings::default()
        };
        let log_format = match r.raw("LOG_FORMAT").map(|v| v.to_ascii_lowercase()) {
            None => LogFormat::Text,
            Some(v) if v == "text" || v == "pretty" => LogFormat::Text,
            Some(v) if v == "json" => LogFormat::Json,
            Some(v) => {
                r.errors
                    .push(format!("LOG_FORMAT must be text or json (got {v:?})"));
                LogFormat::Text
            }
        };
        let redis_namespace = r.raw("REDIS_NAMESPACE").unwrap_or_else(|| "portal".into());
        if !redis_namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == ':')
        {
            r.errors.push(format!(
                "REDIS_NAMESPACE must be letters, digits, '_', '-' or ':' (got {redis_namespace:?})"
            ));
        }
        let database_max_connections: u32 =
            r.ranged("DATABASE_MAX_CONNECTIONS", 20, 1, 500, "a number", "");
        let api_key_cache_ttl = r.seconds("API_KEY_CACHE_TTL_SECS", 60, 1, 60);
        let read_cache_ttl = Duration::from_secs(r.ranged(
            "READ_CACHE_TTL_SECS",
            30,
            0,
            300,
            "a whole number of seconds (0 turns the cache off)",
            " seconds",
        ));
        let worker_heartbeat = r.seconds("WORKER_HEARTBEAT_SECS", 30, 1, 3600);
        let worker_missed_heartbeats: u32 = r.parse("WORKER_MISSED_HEARTBEATS", 10, "a number");
        let shutdown_timeout = r.seconds("SHUTDOWN_TIMEOUT_SECS", 30, 1, 3600);
        let migrate_on_start = r.flag("MIGRATE_ON_START", true);
        let events_flush_rows: usize =
            r.ranged("EVENTS_FLUSH_ROWS", 100_000, 1, 1_000_000, "a number", "");
        let flush_ms: u64 = r.ranged(
            "EVENTS_FLUSH_MS",
            200,
            10,
            60_000,
            "a number of milliseconds",
            "",
        );
        // At most 4,000: a dead worker's batches go back on the queue as the arguments of one
        // command inside apalis's Redis script, which cannot take more than ~8,000. 2048 by
        // default: a landing holds its batches until it commits, so with batches of 100 events
        // two full landings (2 × 100,000 rows) need 2,000 of them; at 1024 the second lander only
        // ever got the 24 left over, and landings ran one after the other.
        let events_concurrency: usize =
            r.ranged("EVENTS_CONCURRENCY", 2048, 1, 4_000, "a number", "");
        let events_landers: usize = r.ranged("EVENTS_LANDERS", 2, 1, 16, "a number", "");
        // At most 512: the largest Redis string.
        let events_seen_filter_mb: u32 = r.ranged(
            "EVENTS_SEEN_FILTER_MB",
            64,
            0,
            512,
            "a number of megabytes",
            "",
        );
        let hash_wait_ms: u64 = r.ranged(
            "PASSWORD_HASH_WAIT_MS",
            2_000,
            0,
            60_000,
            "a number of milliseconds",
            "",
        );
        let trusted_proxies = match r.raw("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(v) => match parse_cidrs(&v) {
                Ok(nets) => nets,
                Err(bad) => {
                    r.errors.push(format!(
                        "TRUSTED_PROXIES must be comma-separated addresses or CIDR blocks like 10.0.0.0/8, ::1 (got {bad:?})"
                    ));
                    Vec::new()
                }
            },
        };
        let member_events_per_minute: u32 = r.ranged(
            "MEMBER_EVENTS_PER_MINUTE",
            1_000,
            0,
            1_000_000,
            "a whole number (0 turns the limit off)",
            "",
        );
        let statement_timeout_ms: u64 = r.ranged(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            5_000,
            100,
            600_000,
            "a number of milliseconds",
            " milliseconds",
        );
        let clickhouse_max_execution = r.seconds("CLICKHOUSE_MAX_EXECUTION_SECS", 10, 1, 3600);
        let clickhouse_insert_quorum: u32 = r.ranged(
            "CLICKHOUSE_INSERT_QUORUM",
            2,
            1,
            9,
            "a whole number of replicas",
            " replicas",
        );

        if !r.errors.is_empty() {
            return Err(ConfigErrors(r.errors));
        }
        Ok(Config {
            database_url: Secret::new(database_url),
            database_max_connections,
            redis_url: Secret::new(redis_url),
            redis_namespace,
            clickhouse_url,
            clickhouse_database,
            clickhouse_user,
            clickhouse_password: Secret::new(clickhouse_password),
            clickhouse_cluster,
            clickhouse_insert_quorum,
            jwt_secret: Secret::new(jwt_secret),
            bind,
            export_dir,
            export_store,
            s3,
            log_format,
            api_key_cache_ttl,
            read_cache_ttl,
            worker_heartbeat,
            worker_missed_heartbeats,
            shutdown_timeout,
            migrate_on_start,
            events_flush_rows,
            events_flush_interval: Duration::from_millis(flush_ms),
            events_concurrency,
            events_landers,
            events_seen_filter_mb,
            trusted_proxies,
            password_hash_wait: Duration::from_millis(hash_wait_ms),
            web_dir,
            member_events_per_minute,
            database_statement_timeout: Duration::from_millis(statement_timeout_ms),
            clickhouse_max_execution,
        })
    }
}

/// The placeholder `.env.example` ships: a server must never start with it.
pub const JWT_SECRET_PLACEHOLDER: &str = "change-me-change-me-change-me-change-me";

/// Why a signing key is unfit, if it is: the shipped placeholder, shorter than 32 bytes, or fewer
/// than 16 distinct characters (a repeated word or a run of one letter).
pub fn check_jwt_secret(secret: &str) -> Result<(), String> {
    if secret == JWT_SECRET_PLACEHOLDER {
        return Err(
            "is the placeholder from .env.example; generate one with: openssl rand -base64 48"
                .into(),
        );
    }
    if secret.len() < 32 {
        return Err(format!(
            "must be at least 32 bytes (got {}); generate one with: openssl rand -base64 48",
            secret.len()
        ));
    }
    let distinct = secret
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if distinct < 16 {
        return Err(format!(
            "must have at least 16 distinct characters (got {distinct}); generate one with: openssl rand -base64 48"
        ));
    }
    Ok(())
}

/// `10.0.0.0/8, 192.168.1.7, ::1` → networks (a bare address is a single-host network). Returns
/// the first entry that is neither.
pub fn parse_cidrs(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| s.to_string())
        })
        .collect()
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the names we accept for databases we interpolate into DDL.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const GOOD: &[(&str, &str)] = &[
        ("DATABASE_URL", "postgres://u:p@localhost/db"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("CLICKHOUSE_URL", "http://127.0.0.1:8123"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn minimal_environment_gives_defaults() {
        let c = Config::from_lookup(lookup(GOOD)).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.clickhouse_database, "portal");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.api_key_cache_ttl, Duration::from_secs(60));
        assert_eq!(c.read_cache_ttl, Duration::from_secs(30));
        assert!(c.migrate_on_start);
        assert_eq!(c.member_events_per_minute, 1_000);
        assert_eq!(c.database_statement_timeout, Duration::from_secs(5));
        assert_eq!(c.clickhouse_max_execution, Duration::from_secs(10));
    }

    #[test]
    fn member_events_per_minute_is_a_number_and_zero_turns_it_off() {
        let mut off = GOOD.to_vec();
        off.push(("MEMBER_EVENTS_PER_MINUTE", "0"));
        assert_eq!(
            Config::from_lookup(lookup(&off))
                .unwrap()
                .member_events_per_minute,
            0
        );
        for bad in ["-1", "many", "1000001"] {
            let mut vars = GOOD.to_vec();
            vars.push(("MEMBER_EVENTS_PER_MINUTE", bad));
            let text = Config::from_lookup(lookup(&vars)).unwrap_err().to_string();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("MEMBER_EVENTS_PER_MINUTE"), "{text}");
        }
    }

    #[test]
    fn the_read_cache_ttl_is_bounded_and_zero_turns_the_cache_off() {
        let mut off = GOOD.to_vec();
        off.push(("READ_CACHE_TTL_SECS", "0"));
        assert_eq!(
            Config::from_lookup(lookup(&off)).unwrap().read_cache_ttl,
            Duration::ZERO
        );
        for bad in ["-1", "1.5", "301", "soon"] {
            let mut vars = GOOD.to_vec();
            vars.push(("READ_CACHE_TTL_SECS", bad));
            let text = Config::from_lookup(lookup(&vars)).unwrap_err().to_string();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("READ_CACHE_TTL_SECS"), "{text}");
        }
    }

    #[test]
    fn query_time_limits_are_read_and_bounded() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("DATABASE_STATEMENT_TIMEOUT_MS", "250"),
            ("CLICKHOUSE_MAX_EXECUTION_SECS", "2"),
        ]);
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(c.database_statement_timeout, Duration::from_millis(250));
        assert_eq!(c.clickhouse_max_execution, Duration::from_secs(2));

        let mut bad = GOOD.to_vec();
        bad.extend([
            ("DATABASE_STATEMENT_TIMEOUT_MS", "0"),
            ("CLICKHOUSE_MAX_EXECUTION_SECS", "0.5"),
        ]);
        let text = Config::from_lookup(lookup(&bad)).unwrap_err().to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.contains("DATABASE_STATEMENT_TIMEOUT_MS must be between 100 and 600000"),
            "{text}"
        );
        assert!(
            text.contains("CLICKHOUSE_MAX_EXECUTION_SECS must be"),
            "{text}"
        );
    }

    #[test]
    fn cluster_mode_is_off_unless_named_and_its_name_is_checked() {
        let c = Config::from_lookup(lookup(GOOD)).unwrap();
        assert_eq!(c.clickhouse_cluster, None);
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("CLICKHOUSE_CLUSTER", "portal_cluster"),
            ("CLICKHOUSE_INSERT_QUORUM", "3"),
        ]);
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(c.clickhouse_cluster.as_deref(), Some("portal_cluster"));
        assert_eq!(c.clickhouse_insert_quorum, 3);
        let mut bad = GOOD.to_vec();
        bad.extend([
            ("CLICKHOUSE_CLUSTER", "two words"),
            ("CLICKHOUSE_INSERT_QUORUM", "0"),
        ]);
        let text = Config::from_lookup(lookup(&bad)).unwrap_err().to_string();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("CLICKHOUSE_CLUSTER must be"), "{text}");
        assert!(
            text.contains("CLICKHOUSE_INSERT_QUORUM must be between 1 and 9"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_one_line_naming_the_variable() {
        let err = Config::from_lookup(lookup(&[
            ("DATABASE_URL", "mysql://x"),
            ("CLICKHOUSE_URL", "http://127.0.0.1:8123"),
            ("JWT_SECRET", "short"),
            ("PORTAL_BIND", "not-an-address"),
            ("LOG_FORMAT", "xml"),
            ("API_KEY_CACHE_TTL_SECS", "600"),
        ]))
        .unwrap_err();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        for (line, var) in lines.iter().zip([
            "DATABASE_URL",
            "REDIS_URL",
            "JWT_SECRET",
            "PORTAL_BIND",
            "LOG_FORMAT",
            "API_KEY_CACHE_TTL_SECS",
        ]) {
            assert!(line.starts_with("configuration error: "), "{line}");
            assert!(line.contains(var), "{line} should name {var}");
        }
    }

    #[test]
    fn weak_signing_keys_stop_start_up() {
        for (secret, why) in [
            (JWT_SECRET_PLACEHOLDER, "placeholder"),
            ("0123456789abcdef0123456789abcde", "at least 32 bytes"),
            ("abababababababababababababababababababab", "16 distinct"),
            ("0123456789abcde00123456789abcde0", "16 distinct"),
        ] {
            let mut vars = GOOD.to_vec();
            vars.retain(|(k, _)| *k != "JWT_SECRET");
            vars.push(("JWT_SECRET", secret));
            let text = Config::from_lookup(lookup(&vars)).unwrap_err().to_string();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("JWT_SECRET"), "{text}");
            assert!(text.contains(why), "{secret}: {text}");
            assert!(
                !text.contains(secret),
                "the secret itself is not printed: {text}"
            );
        }
        // What run.sh writes (base64 of random bytes) passes.
        let mut vars = GOOD.to_vec();
        vars.retain(|(k, _)| *k != "JWT_SECRET");
        vars.push(("JWT_SECRET", "q3Zx9LmT0vB7wK2cR8yN5hJ4fD1sA6gU"));
        assert!(Config::from_lookup(lookup(&vars)).is_ok());
    }

    #[test]
    fn trusted_proxies_are_cidr_lists() {
        let mut vars = GOOD.to_vec();
        vars.push((
            "TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7 ,::1,2001:db8::/32",
        ));
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            shown,
            ["10.0.0.0/8", "192.168.1.7/32", "::1/128", "2001:db8::/32"]
        );
        assert!(Config::from_lookup(lookup(GOOD))
            .unwrap()
            .trusted_proxies
            .is_empty());
        let mut bad = GOOD.to_vec();
        bad.push(("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"));
        let text = Config::from_lookup(lookup(&bad)).unwrap_err().to_string();
        assert!(
            text.contains("TRUSTED_PROXIES") && text.contains("proxy.internal"),
            "{text}"
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("EXPORT_STORE", "s3://bucket/prefix"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecretKEY"),
            ("AWS_SESSION_TOKEN", "sessionTOKENvalue"),
        ]);
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
        assert!(!dbg.contains("u:p@"), "{dbg}");
        assert!(!dbg.contains("wJalrXUtnFEMIsecretKEY"), "{dbg}");
        assert!(!dbg.contains("sessionTOKENvalue"), "{dbg}");
    }

    #[test]
    fn s3_settings_are_read_and_checked() {
        let mut vars = GOOD.to_vec();
        vars.extend([
            ("EXPORT_STORE", "s3://exports/portal"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_DEFAULT_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SSE_KMS_KEY_ID", "key-1"),
        ]);
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        assert_eq!(
            c.s3.other,
            vec![("AWS_SSE_KMS_KEY_ID".to_string(), "key-1".to_string())]
        );
        assert_eq!(c.export_store.as_deref(), Some("s3://exports/portal"));
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(c.s3.region.as_deref(), Some("eu-central-1"));
        assert_eq!(c.s3.access_key_id.as_deref(), Some("id"));

        // Without an S3 store the AWS_* variables are not looked at.
        let mut stray = GOOD.to_vec();
        stray.extend([
            ("AWS_ACCESS_KEY_ID", "id-without-secret"),
            ("AWS_ENDPOINT", "x"),
        ]);
        let c = Config::from_lookup(lookup(&stray)).unwrap();
        assert!(c.s3.access_key_id.is_none() && c.s3.endpoint.is_none());

        let mut bad = GOOD.to_vec();
        bad.extend([
            ("EXPORT_STORE", "gs://elsewhere"),
            ("AWS_ENDPOINT", "ftp://host"),
            ("AWS_ACCESS_KEY_ID", "id-without-secret"),
        ]);
        let text = Config::from_lookup(lookup(&bad)).unwrap_err().to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("EXPORT_STORE"), "{text}");
        assert!(text.contains("AWS_ENDPOINT must be a URL"), "{text}");
        assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
    }
}
