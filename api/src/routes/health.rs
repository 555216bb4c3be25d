//! Operability: liveness, readiness, metrics.

use std::time::Duration;

use portal_shared::jobs;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope};
use crate::middleware::state;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` while the process runs.
    status: &'static str,
    version: &'static str,
}

/// Liveness: the process is up.
#[endpoint(tags("operations"), status_codes(200))]
pub async fn health() -> Json<Envelope<Health>> {
    ok(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    postgres: String,
    redis: String,
    clickhouse: String,
    /// The export store (local directory or S3-compatible bucket): `ok` or `unavailable`.
    storage: String,
}

/// Readiness: Postgres, Redis and ClickHouse answer (503 names the ones that do not); the export
/// store is reported as `ok` or `unavailable` without failing readiness (only exports need it).
#[endpoint(
    tags("operations"),
    status_codes(200, 503),
    responses(
        (status_code = 200, description = "Every dependency answers", body = Envelope<Readiness>),
        (
            status_code = 503,
            description = "Not ready: `details` names each dependency that does not answer",
            body = crate::error::ErrorEnvelope,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))
        ),
    )
)]
pub async fn ready(depot: &mut Depot, res: &mut Response) -> Json<serde_json::Value> {
    let st = state(depot).clone();
    let pg = async {
        tokio::time::timeout(Duration::from_secs(2), portal_shared::pg::ping(&st.db))
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
    };
    let rd = async {
        let mut conn = st.redis.clone();
        tokio::time::timeout(
            Duration::from_secs(2),
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        .map_err(|_| "timed out".to_string())
        .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
    };
    let ch = st.ch.ping();
    let store = async {
        tokio::time::timeout(Duration::from_secs(2), st.storage.check())
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r)
    };
    let (pg, rd, ch, store) = tokio::join!(pg, rd, ch, store);
    // The export store is reported but does not take the API out of rotation: only exports
    // need it.
    let storage = match &store {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(dependency = "storage", error = %e, "export storage check failed");
            "unavailable"
        }
    };
    let checks = [("postgres", pg), ("redis", rd), ("clickhouse", ch)];
    let failing: Vec<_> = checks
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| (*name, e.clone())))
        .collect();
    if failing.is_empty() {
        return Json(serde_json::json!({
            "success": true,
            "data": { "postgres": "ok", "redis": "ok", "clickhouse": "ok", "storage": storage }
        }));
    }
    for (name, err) in &failing {
        tracing::warn!(dependency = name, error = %err, "readiness check failed");
    }
    res.status_code(StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert("retry-after", salvo::http::HeaderValue::from_static("5"));
    let names: Vec<&str> = failing.iter().map(|(n, _)| *n).collect();
    Json(serde_json::json!({
        "success": false,
        "error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": format!("not ready: {} unavailable", names.join(", ")),
            "details": failing.iter().map(|(n, _)| serde_json::json!({"field": n, "message": "unreachable"})).collect::<Vec<_>>(),
        }
    }))
}

/// Prometheus metrics (text exposition format).
#[endpoint(
    tags("operations"),
    status_codes(200),
    responses((status_code = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
pub async fn prometheus(depot: &mut Depot, res: &mut Response) {
    let st = state(depot).clone();
    let mut conn = st.redis.clone();
    for queue in [
        jobs::HOUSEKEEPING_QUEUE,
        portal_shared::pipeline::EVENTS_QUEUE,
        portal_shared::jobs::exports::EXPORTS_QUEUE,
    ] {
        if let Ok(Ok(d)) = tokio::time::timeout(
            Duration::from_secs(1),
            jobs::queue_depth(&mut conn, &st.config.redis_namespace, queue),
        )
        .await
        {
            for (state_name, v) in [
                ("pending", d.pending),
                ("running", d.running),
                ("dead", d.dead),
            ] {
                metrics::gauge!("portal_queue_depth", "queue" => queue, "state" => state_name)
                    .set(v as f64);
            }
        }
    }
    let handle = portal_shared::telemetry::metrics_handle();
    handle.run_upkeep();
    res.add_header(
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
        true,
    )
    .ok();
    res.render(handle.render());
}
