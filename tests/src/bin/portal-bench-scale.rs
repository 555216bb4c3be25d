//! Many processes on the same queues: the real `portal-api` and `portal-worker` binaries, in
//! configurations of API and worker processes (default 1 + 1, 1 + 2, 1 + 3 and 2 + 2), each on a
//! database, ClickHouse database and Redis namespace of its own. For each: events sent from 1,000
//! members with skewed activity (batches of 100, spread over the API processes), the rate the
//! APIs accepted them, the rate they were counted end to end (first 202 → last event counted),
//! and exactly once (receipts = ClickHouse rows = views in the member summaries = events sent).
//!
//! Run: `bash scripts/bench.sh` (release build), or `target/release/portal-bench-scale`. Sizes:
//! BENCH_SCALE_EVENTS (default 200000), BENCH_MEMBERS (default 1000), BENCH_CONNECTIONS (default
//! 64), BENCH_SCALE_CONFIGS (default `1x1,1x2,1x3,2x2`: API processes x worker processes).

use std::time::Instant;

use portal_tests::bench::{batches, bodies, load_members, post_all, tokens_for, BATCH};
use portal_tests::{env_usize, TestApp, COUNTED};
use rand::distr::weighted::WeightedIndex;

struct Measured {
    apis: usize,
    workers: usize,
    accepted_per_s: f64,
    counted_per_s: f64,
    events: usize,
}

async fn run(
    apis: usize,
    workers: usize,
    events: usize,
    n_members: usize,
    connections: usize,
) -> Measured {
    let app = TestApp::spawn_with(|v| {
        v.insert("MEMBER_EVENTS_PER_MINUTE".into(), "0".into());
        // The product's defaults, not the tests' quick ones: under full load a worker must not be
        // taken for dead after 3 s without a heartbeat (its batches would be delivered again).
        v.insert("EVENTS_FLUSH_MS".into(), "200".into());
        v.insert("WORKER_HEARTBEAT_SECS".into(), "30".into());
        v.insert("WORKER_MISSED_HEARTBEATS".into(), "10".into());
        v.insert("DATABASE_MAX_CONNECTIONS".into(), "20".into());
        v.remove("EVENTS_SEEN_FILTER_MB");
    })
    .await;
    app.catalogue().await;
    let p = app.partner().await;
    let client = p.t.client_id;
    let members = load_members(&app.db, client, n_members, "scale").await;
    let tokens = tokens_for(&app, client, &members);
    let weights = WeightedIndex::new((0..n_members).map(|i| 1.0 / (i as f64 + 1.0))).unwrap();

    let mut children = Vec::new();
    let mut bases = Vec::new();
    for _ in 0..apis {
        let (child, base) = app.api_process(&[]).await;
        children.push(child);
        bases.push(base);
    }
    for _ in 0..workers {
        children.push(app.worker_process(&[]));
    }

    // Warm-up: connections, caches and the first landings.
    let warm = BATCH * 20;
    post_all(
        &bases,
        &p.t.api_key,
        &tokens,
        bodies(&batches(warm, n_members, Some(&weights))),
        connections,
    )
    .await;
    assert_eq!(
        app.wait_for_count(COUNTED, client, warm as i64, 300).await,
        warm as i64
    );

    let load = bodies(&batches(events, n_members, Some(&weights)));
    let sent = load.len() * BATCH;
    let started = Instant::now();
    let accepted_in = post_all(&bases, &p.t.api_key, &tokens, load, connections).await;
    let total = (warm + sent) as i64;
    assert_eq!(
        app.wait_for_count(COUNTED, client, total, 900).await,
        total,
        "every event counted"
    );
    let counted_in = started.elapsed();
    // Exactly once: receipts = ClickHouse rows = views in the member summaries, queue drained.
    app.assert_counted_once(client, total, 300).await;
    drop(children);
    Measured {
        apis,
        workers,
        accepted_per_s: sent as f64 / accepted_in.as_secs_f64(),
        counted_per_s: sent as f64 / counted_in.as_secs_f64(),
        events: sent,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let events = env_usize("BENCH_SCALE_EVENTS", 200_000);
    let n_members = env_usize("BENCH_MEMBERS", 1000).max(1);
    let connections = env_usize("BENCH_CONNECTIONS", 64);
    let configs = std::env::var("BENCH_SCALE_CONFIGS").unwrap_or_else(|_| "1x1,1x2,1x3,2x2".into());
    let mut out = Vec::new();
    for c in configs.split(',') {
        let (a, w) = c
            .trim()
            .split_once('x')
            .and_then(|(a, w)| Some((a.parse::<usize>().ok()?, w.parse::<usize>().ok()?)))
            .filter(|(a, w)| *a >= 1 && *w >= 1)
            .ok_or_else(|| anyhow::anyhow!("BENCH_SCALE_CONFIGS: {c:?} is not <apis>x<workers>"))?;
        eprintln!("running {a} API + {w} worker processes");
        out.push(run(a, w, events, n_members, connections).await);
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nMany processes on the same queues ({cores} cores; Postgres, Redis, ClickHouse and the load generator on the same machine)\n"
    );
    println!("| API processes | worker processes | events | accepted events/s | counted events/s (end to end) | counted vs the first row | exactly once |");
    println!("|---|---|---|---|---|---|---|");
    let base = out.first().map_or(1.0, |m| m.counted_per_s);
    for m in &out {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} × | yes |",
            m.apis,
            m.workers,
            m.events,
            m.accepted_per_s,
            m.counted_per_s,
            m.counted_per_s / base
        );
    }
    Ok(())
}
