//! Billing report memory: the resident set of the real `portal-api` process answering
//! `GET /partner/billing` pages for a partner with 100 billable members and for one with 10,000
//! (first and last page). Each case runs in a fresh API process (peak RSS only grows), which
//! answers a warm-up request and then BENCH_BILLING_REQUESTS more; its idle and peak RSS
//! (`VmHWM`) are reported next to the answer time.
//!
//! Run: `bash scripts/bench.sh`, or after `cargo build --release --workspace --bins`:
//! `target/release/portal-bench-billing`. Sizes: BENCH_BILLING_SMALL (default 100),
//! BENCH_BILLING_LARGE (default 10000), BENCH_BILLING_EVENTS per member (default 3),
//! BENCH_BILLING_REQUESTS (default 20).

use std::time::{Duration, Instant};

use chrono::Utc;
use portal_shared::domain::ids::MemberId;
use portal_shared::pipeline::ChEvent;
use portal_tests::{env_usize, Partner, TestApp};
use uuid::Uuid;

/// A partner with `members` members (names in no particular order), each with `events` watch
/// events ten minutes ago.
async fn partner_with_billable(app: &TestApp, members: usize, events: usize) -> Partner {
    let p = app.partner().await;
    let ids: Vec<MemberId> = sqlx::query_scalar(
        "INSERT INTO members (id, client_id, email, name, password_hash)
         SELECT gen_random_uuid(), $1, 'member' || g || '@example.com',
                'Member ' || (g * 7919 % $2), 'x'
         FROM generate_series(1, $2) g RETURNING id",
    )
    .bind(p.t.client_id)
    .bind(members as i64)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let now = Utc::now() - chrono::Duration::minutes(10);
    let day = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    app.insert_ch_events(ids.iter().flat_map(|id| {
        (0..events).map(|e| ChEvent {
            client_id: p.t.client_id,
            event_id: Uuid::new_v4(),
            member_id: *id,
            class_id: "yoga-1".into(),
            category: "Yoga".into(),
            started_at: now - chrono::Duration::seconds(e as i64),
            local_date: day,
            watched_seconds: 600,
            received_at: now,
        })
    }))
    .await;
    p
}

struct Measured {
    rows: usize,
    total: i64,
    idle_kib: u64,
    peak_kib: u64,
    median: Duration,
}

async fn measure(app: &TestApp, p: &Partner, page: usize, requests: usize) -> Measured {
    let (mut child, base) = app.api_process(&[]).await;
    let pid = child.id().unwrap();
    let http = reqwest::Client::new();
    let url = format!("{base}/partner/billing?limit=100&page={page}");
    let get = || async {
        let r = http.get(&url).bearer_auth(&p.admin).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json::<serde_json::Value>().await.unwrap()
    };
    let idle_kib = portal_tests::proc_status_kib(pid, "VmRSS:");
    let first = get().await;
    let mut times = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        get().await;
        times.push(t.elapsed());
    }
    times.sort();
    let peak_kib = portal_tests::proc_status_kib(pid, "VmHWM:");
    child.start_kill().ok();
    child.wait().await.ok();
    Measured {
        rows: first["data"]["members"].as_array().map_or(0, Vec::len),
        total: first["data"]["activeMemberCount"].as_i64().unwrap_or(-1),
        idle_kib,
        peak_kib,
        median: times.get(times.len() / 2).copied().unwrap_or_default(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let small = env_usize("BENCH_BILLING_SMALL", 100);
    let large = env_usize("BENCH_BILLING_LARGE", 10_000);
    let events = env_usize("BENCH_BILLING_EVENTS", 3);
    let requests = env_usize("BENCH_BILLING_REQUESTS", 20);
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let a = partner_with_billable(&app, small, events).await;
    let b = partner_with_billable(&app, large, events).await;
    sqlx::query("ANALYZE members").execute(&app.db).await?;
    let last = large.div_ceil(100);
    let mib = |k: u64| k as f64 / 1024.0;
    println!();
    println!(
        "| billing page (limit 100), fresh portal-api process | rows / activeMemberCount | API idle RSS | API peak RSS after {requests} requests | median answer |"
    );
    println!("|---|---|---|---|---|");
    for (what, p, page) in [
        (format!("{small} billable members, page 1"), &a, 1),
        (format!("{large} billable members, page 1"), &b, 1),
        (format!("{large} billable members, page {last}"), &b, last),
    ] {
        let m = measure(&app, p, page, requests).await;
        println!(
            "| {what} | {} / {} | {:.1} MiB | {:.1} MiB | {} ms |",
            m.rows,
            m.total,
            mib(m.idle_kib),
            mib(m.peak_kib),
            m.median.as_millis()
        );
    }
    Ok(())
}
