//! Benchmarks against the real services, each next to the limit measured in the same run:
//!
//! 1. ingest: events/s end to end (HTTP API → Redis → worker → ClickHouse + Postgres, batches of
//!    100) next to the raw ClickHouse bulk-insert rate of the same rows through the crate;
//! 2. analytics: `GET /partner/analytics?period=quarter` latency (p50/p95) for a partner with
//!    10 million events over the quarter, next to the same ClickHouse queries run bare.
//!
//! Run: `bash scripts/bench.sh` (release build). Sizes: BENCH_EVENTS (default 200000),
//! BENCH_ANALYTICS_EVENTS (default 10000000), BENCH_CONCURRENCY (default 32).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use portal_shared::ch::analytics::{self, DayRange};
use portal_shared::pipeline::ChEvent;
use portal_tests::{env_usize, event, percentile, TestApp, LANDED};
use salvo::prelude::*;
use serde_json::json;
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    portal_shared::telemetry::init_tracing(portal_shared::config::LogFormat::Text);
    let total_events = env_usize("BENCH_EVENTS", 200_000);
    let analytics_events = env_usize("BENCH_ANALYTICS_EVENTS", 10_000_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 32);
    let batch_size = 100;

    let app = TestApp::spawn_with(|v| {
        v.insert("EVENTS_FLUSH_MS".into(), "500".into());
        v.insert("EVENTS_FLUSH_ROWS".into(), "50000".into());
        v.insert("EVENTS_CONCURRENCY".into(), "512".into());
        v.insert("DATABASE_MAX_CONNECTIONS".into(), "40".into());
        v.insert("RUST_LOG".into(), "warn".into());
        // One member sends every event: no per-member limit here.
        v.insert("MEMBER_EVENTS_PER_MINUTE".into(), "0".into());
    })
    .await;
    app.catalogue().await;
    let p = app.partner().await;
    let (member, token) = app.member(&p, "bench@example.com", "Bench").await;
    let member = portal_shared::domain::ids::MemberId(Uuid::parse_str(&member)?);

    // The real HTTP server.
    let acceptor = TcpListener::new("127.0.0.1:0").bind().await;
    let addr = acceptor.local_addr()?;
    let server = Server::new(acceptor);
    let handle = server.handle();
    let service = portal_api::service(app.state.clone());
    tokio::spawn(server.serve(service));
    let base = format!("http://{addr}");
    let worker = app.worker().await;

    // ---- 1. ingest ---------------------------------------------------------------------------
    let classes = ["yoga-1", "yoga-2", "hiit-1", "pilates-1"];
    let now = Utc::now();
    let batches: Vec<serde_json::Value> = (0..total_events / batch_size)
        .map(|b| {
            let events: Vec<_> = (0..batch_size)
                .map(|i| {
                    let n = b * batch_size + i;
                    event(
                        classes[n % 4],
                        now - ChronoDuration::seconds((n % 86_400) as i64),
                        60 + (n % 1200) as u32,
                    )
                })
                .collect();
            json!({ "events": events })
        })
        .collect();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let queue = Arc::new(tokio::sync::Mutex::new(batches.clone().into_iter()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let queue = queue.clone();
        let client = client.clone();
        let url = format!("{base}/app/events");
        let (key, token) = (p.t.api_key.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().await.next() else {
                    break;
                };
                let r = client
                    .post(&url)
                    .header("x-api-key", &key)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(
                    r.status().as_u16(),
                    202,
                    "{}",
                    r.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let api_done = started.elapsed();
    let landed = app
        .wait_for_count(LANDED, p.t.client_id, total_events as i64, 600)
        .await;
    let e2e = started.elapsed();
    assert_eq!(landed as usize, total_events, "all events landed");
    worker.stop().await?;

    // Raw: the same rows, one bulk insert through the crate into a plain table of the same shape.
    let tz = chrono_tz::Europe::Berlin;
    let rows: Vec<ChEvent> = batches
        .iter()
        .flat_map(|b| b["events"].as_array().unwrap().clone())
        .map(|e| {
            let started_at = chrono::DateTime::parse_from_rfc3339(e["startedAt"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc);
            ChEvent {
                client_id: p.t.client_id,
                event_id: Uuid::parse_str(e["eventId"].as_str().unwrap()).unwrap(),
                member_id: member,
                class_id: e["classId"].as_str().unwrap().to_string(),
                category: "Yoga".into(),
                started_at,
                local_date: started_at.with_timezone(&tz).date_naive(),
                watched_seconds: e["watchedSeconds"].as_u64().unwrap() as u32,
                received_at: now,
            }
        })
        .collect();
    let ch = &app.state.ch;
    ch.client
        .query("CREATE TABLE raw_bench AS watch_events")
        .execute()
        .await?;
    let raw_started = Instant::now();
    let mut insert = ch.client.insert::<ChEvent>("raw_bench").await?;
    for r in &rows {
        insert.write(r).await?;
    }
    insert.end().await?;
    let raw = raw_started.elapsed();

    let e2e_rate = total_events as f64 / e2e.as_secs_f64();
    let raw_rate = total_events as f64 / raw.as_secs_f64();

    println!();
    println!("| measurement | value | limit measured in this run | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| ingest, end to end ({total_events} events, batches of {batch_size}, {concurrency} clients) | {e2e_rate:.0} events/s ({:.1} s; API accepted all in {:.1} s) | raw ClickHouse bulk insert of the same rows: {raw_rate:.0} rows/s ({:.2} s) | {:.1} % |",
        e2e.as_secs_f64(),
        api_done.as_secs_f64(),
        raw.as_secs_f64(),
        e2e_rate / raw_rate * 100.0
    );

    if analytics_events == 0 {
        return Ok(());
    }
    // ---- 2. analytics --------------------------------------------------------------------------
    let big = app.tenant().await;
    let (admin_token, _) = app.tokens(&big.admin_email).await;
    let gen_started = Instant::now();
    // 10 M events over the last 90 days, 5,000 members, 4 classes, generated inside ClickHouse
    // (the materialized views fill the aggregates exactly as for worker inserts).
    let chunk = 2_000_000usize;
    let mut done = 0usize;
    while done < analytics_events {
        let n = chunk.min(analytics_events - done);
        ch.client
            .query(&format!(
                "INSERT INTO watch_events
                 SELECT toUUID(?), generateUUIDv4(),
                        toUUID(concat('00000000-0000-4000-8000-', substring(toString(1000000000000 + number % 5000), 2, 12))),
                        arrayElement(['yoga-1','yoga-2','hiit-1','pilates-1'], (number % 4) + 1),
                        arrayElement(['Yoga','Yoga','HIIT','Pilates'], (number % 4) + 1),
                        toDateTime(now() - (number * 7919) % (89 * 86400)),
                        toDate(toDateTime(now() - (number * 7919) % (89 * 86400)), 'Europe/Berlin'),
                        toUInt32(60 + number % 1800), now()
                 FROM numbers({done}, {n})"
            ))
            .bind(big.client_id.to_string())
            .execute()
            .await?;
        done += n;
    }
    let generated = gen_started.elapsed();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let range = DayRange::last(90, today);
    let catalogue = app.state.catalogue.get(&app.db).await?;
    let runs = 30;
    // Warm both paths once.
    let _ = analytics::totals(ch, big.client_id, range).await?;
    let mut bare = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        tokio::try_join!(
            analytics::totals(ch, big.client_id, range),
            analytics::by_day(ch, big.client_id, range),
            analytics::top_categories(ch, big.client_id, range),
            analytics::top_classes(ch, big.client_id, range, &catalogue),
        )?;
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let url = format!("{base}/partner/analytics?period=quarter");
    let _ = client.get(&url).bearer_auth(&admin_token).send().await?;
    let mut api = Vec::new();
    let mut check = serde_json::Value::Null;
    for _ in 0..runs {
        let t = Instant::now();
        let r = client.get(&url).bearer_auth(&admin_token).send().await?;
        assert_eq!(r.status().as_u16(), 200);
        check = r.json().await?;
        api.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let views = check["data"]["totals"]["classesWatched"]
        .as_u64()
        .unwrap_or(0);
    bare.sort_by(|a, b| a.total_cmp(b));
    api.sort_by(|a, b| a.total_cmp(b));
    handle.stop_graceful(Duration::from_secs(5));

    println!(
        "| analytics p50, quarter, {views} events | {:.1} ms | bare ClickHouse queries p50: {:.1} ms | {:.2} × |",
        percentile(&api, 0.5),
        percentile(&bare, 0.5),
        percentile(&api, 0.5) / percentile(&bare, 0.5)
    );
    println!(
        "| analytics p95, quarter, {views} events | {:.1} ms | bare ClickHouse queries p95: {:.1} ms | {:.2} × |",
        percentile(&api, 0.95),
        percentile(&bare, 0.95),
        percentile(&api, 0.95) / percentile(&bare, 0.95)
    );
    println!();
    println!(
        "(generating {analytics_events} analytics events inside ClickHouse took {:.1} s)",
        generated.as_secs_f64()
    );
    Ok(())
}
