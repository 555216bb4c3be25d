//! API-key lookups under a flood of unknown keys: latency of requests with a valid key
//! (`GET /app/strings` over real HTTP, p50/p95) before, during and after 10,000 requests with
//! random unknown keys, and whether the valid key stays in the known-key cache (its entry count and
//! the Postgres lookups the valid requests caused).
//!
//! Run: `bash scripts/bench.sh` (release build), or `target/release/portal-bench-keys`. Sizes:
//! BENCH_UNKNOWN_KEYS (default 10000), BENCH_KEY_REQUESTS (valid-key requests per phase, default
//! 2000), BENCH_CONCURRENCY (clients sending unknown keys, default 32).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portal_shared::domain::auth::{random_secret, API_KEY_PREFIX};
use portal_tests::{env_usize, percentile, TestApp};
use salvo::prelude::*;

/// Sends valid-key requests one after another until `n` are done (or, with `until`, until it is
/// set); returns their latencies in ms, sorted.
async fn valid_requests(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    n: usize,
    until: Option<Arc<AtomicBool>>,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    loop {
        let done = match &until {
            Some(flag) => flag.load(Ordering::Relaxed),
            None => out.len() >= n,
        };
        if done {
            break;
        }
        let t = Instant::now();
        let r = client.get(url).header("x-api-key", key).send().await?;
        anyhow::ensure!(
            r.status().as_u16() == 200,
            "valid key answered {}",
            r.status()
        );
        r.bytes().await?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    Ok(out)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    portal_shared::telemetry::init_tracing(portal_shared::config::LogFormat::Text);
    let unknown = env_usize("BENCH_UNKNOWN_KEYS", 10_000);
    let per_phase = env_usize("BENCH_KEY_REQUESTS", 2_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);

    let app = TestApp::spawn_with(|v| {
        v.insert("DATABASE_MAX_CONNECTIONS".into(), "40".into());
    })
    .await;
    let t = app.tenant().await;
    let acceptor = TcpListener::new("127.0.0.1:0").bind().await;
    let addr = acceptor.local_addr()?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    tokio::spawn(server.serve(portal_api::service(app.state.clone())));
    let url = format!("http://{addr}/app/strings");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency + 1)
        .build()?;
    let cache = &app.state.api_keys;

    // Warm: the valid key is looked up once and cached.
    valid_requests(&client, &url, &t.api_key, 50, None).await?;
    let (known_before, _) = cache.entry_counts().await;
    let lookups = cache.db_lookups();
    let before = valid_requests(&client, &url, &t.api_key, per_phase, None).await?;
    let lookups_before = cache.db_lookups() - lookups;

    // The flood, with valid-key requests alongside.
    let keys: Vec<String> = (0..unknown)
        .map(|_| random_secret(API_KEY_PREFIX))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(keys.into_iter()));
    let flooding = Arc::new(AtomicBool::new(false));
    let lookups = cache.db_lookups();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (queue, client, url) = (queue.clone(), client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused = 0usize;
            loop {
                let Some(k) = queue.lock().unwrap().next() else {
                    break;
                };
                let r = client.get(&url).header("x-api-key", k).send().await?;
                refused += usize::from(r.status().as_u16() == 401);
                r.bytes().await?;
            }
            anyhow::Ok(refused)
        }));
    }
    let alongside = tokio::spawn({
        let (client, url, key, flag) = (
            client.clone(),
            url.clone(),
            t.api_key.clone(),
            flooding.clone(),
        );
        async move { valid_requests(&client, &url, &key, 0, Some(flag)).await }
    });
    let mut refused = 0;
    for task in tasks {
        refused += task.await??;
    }
    let flood = started.elapsed();
    flooding.store(true, Ordering::Relaxed);
    let during = alongside.await??;
    let flood_lookups = cache.db_lookups() - lookups;
    anyhow::ensure!(
        refused == unknown,
        "{refused} of {unknown} unknown keys refused"
    );

    let (known_after, negative_after) = cache.entry_counts().await;
    let lookups = cache.db_lookups();
    let after = valid_requests(&client, &url, &t.api_key, per_phase, None).await?;
    let lookups_after = cache.db_lookups() - lookups;
    let still_cached = cache.is_cached(&t.api_key);
    handle.stop_graceful(Duration::from_secs(5));

    println!();
    println!(
        "| valid-key requests (GET /app/strings, one client) | p50 | p95 | requests | Postgres key lookups |"
    );
    println!("|---|---|---|---|---|");
    for (phase, lat, lookups) in [
        ("before the flood", &before, Some(lookups_before)),
        ("during the flood", &during, None),
        ("after the flood", &after, Some(lookups_after)),
    ] {
        println!(
            "| {phase} | {:.2} ms | {:.2} ms | {} | {} |",
            percentile(lat, 0.5),
            percentile(lat, 0.95),
            lat.len(),
            lookups.map_or_else(|| "—".to_string(), |n| n.to_string())
        );
    }
    println!();
    println!(
        "flood: {unknown} random unknown keys from {concurrency} clients in {:.2} s ({:.0} requests/s), all 401; {flood_lookups} Postgres lookups (one indexed read each, no writes)",
        flood.as_secs_f64(),
        unknown as f64 / flood.as_secs_f64()
    );
    println!(
        "known-key cache entries: {known_before} before the flood, {known_after} after; valid key still cached: {still_cached}; unknown-key cache: {negative_after} entries (capacity {}, {} s)",
        portal_shared::pg::api_keys::UNKNOWN_KEYS_CAPACITY,
        portal_shared::pg::api_keys::UNKNOWN_KEYS_TTL.as_secs()
    );
    Ok(())
}
