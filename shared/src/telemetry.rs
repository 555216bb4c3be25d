//! One telemetry setup for every binary: `tracing` (text, or JSON with `LOG_FORMAT=json`, filtered
//! by `RUST_LOG`) and a Prometheus recorder for the `metrics` macros.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::{Config, LogFormat};

/// The start of a long-running binary: `.env`, the configuration (exit code 2 with one line per
/// problem), tracing; then `run`, whose error is logged and printed (exit code 1).
pub async fn serve<F, Fut>(name: &str, run: F) -> std::process::ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let _ = dotenvy::dotenv();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            eprintln!("{name}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Installs the global tracing subscriber (writing to stderr, so stdout stays clean for `--json`
/// output). Safe to call more than once (later calls do nothing).
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,salvo_core=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .compact(),
            )
            .try_init(),
    };
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .expect("bucket list is not empty")
            .install_recorder()
            .expect("the metrics recorder is installed once per process");
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        "portal_http_requests_total",
        "HTTP requests by route, method and status"
    );
    metrics::describe_histogram!(
        "portal_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by route and method"
    );
    metrics::describe_counter!("portal_logins_total", "Login attempts by kind and outcome");
    metrics::describe_counter!(
        "portal_api_key_lookups_total",
        "API keys looked up in Postgres (cache misses)"
    );
    metrics::describe_gauge!("portal_queue_depth", "Jobs waiting per queue and state");
    metrics::describe_counter!("portal_jobs_total", "Jobs processed by queue and outcome");
    metrics::describe_counter!(
        "portal_events_ingested_total",
        "Watch events accepted by the API"
    );
    metrics::describe_counter!(
        "portal_events_ledger_lookups_total",
        "Accepted watch events looked up in the receipt ledger (those the seen-events filter may have met, or all while it is incomplete, off or away)"
    );
    metrics::describe_counter!(
        "portal_read_cache_hits_total",
        "Dashboard, analytics, funnel, billing and member-list answers served from the read cache, by route"
    );
    metrics::describe_counter!(
        "portal_read_cache_misses_total",
        "Dashboard, analytics, funnel, billing and member-list answers computed from the databases, by route"
    );
}

/// Resolves on SIGTERM or Ctrl-C (both binaries stop gracefully on either).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutdown signal received");
}
