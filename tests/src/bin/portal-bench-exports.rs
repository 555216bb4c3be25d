//! Export benchmark: a members export of 100,000 rows built by the real `portal-worker` process —
//! wall time (request → completed) and the worker's peak RSS — next to Postgres
//! `COPY (same query) TO STDOUT CSV` measured in the same run; once with the local export directory
//! and once with the S3-compatible store (skipped when `BENCH_S3=0`).
//!
//! Run: `bash scripts/bench.sh` (builds release binaries first, starts the S3-compatible test
//! server). Size: BENCH_EXPORT_ROWS.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use portal_shared::storage::Storage;
use portal_tests::{bearer, TestApp};
use sqlx::Connection;

struct Measured {
    wall: Duration,
    size: u64,
    copy: Duration,
    copy_bytes: usize,
    peak_rss_kib: u64,
    idle_rss_kib: u64,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let rows: i64 = std::env::var("BENCH_EXPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut runs = vec![(
        "local directory",
        measure(TestApp::spawn().await, rows).await?,
    )];
    if std::env::var("BENCH_S3").as_deref() != Ok("0") {
        runs.push((
            "S3-compatible store",
            measure(TestApp::spawn_s3().await, rows).await?,
        ));
    }
    println!();
    println!("| measurement | value | limit measured in this run | ratio |");
    println!("|---|---|---|---|");
    for (store, m) in &runs {
        println!(
            "| members export, {rows} rows, {store} (request → completed, worker process) | {:.2} s ({} bytes) | Postgres COPY (same query) TO STDOUT CSV: {:.2} s ({} bytes) | {:.2} × |",
            m.wall.as_secs_f64(),
            m.size,
            m.copy.as_secs_f64(),
            m.copy_bytes,
            m.wall.as_secs_f64() / m.copy.as_secs_f64()
        );
        println!(
            "| worker peak RSS, {store} | {:.1} MiB (idle before the job: {:.1} MiB) | target < 100 MiB | |",
            m.peak_rss_kib as f64 / 1024.0,
            m.idle_rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}

async fn measure(app: TestApp, rows: i64) -> anyhow::Result<Measured> {
    let p = app.partner().await;
    // A connection of its own: the API's pool has the API's statement time limit, and the load
    // (each member also gets its search row, by trigger) can take longer than that.
    let mut conn = sqlx::PgConnection::connect(&app.vars["DATABASE_URL"]).await?;
    let load = Instant::now();
    sqlx::query(
        "INSERT INTO members (id, client_id, email, name, password_hash, registered_at, last_active_at,
                              first_active_at, watch_seconds, class_views, active_days, favorite_category)
         SELECT gen_random_uuid(), $1, 'member' || g || '@example.com',
                CASE WHEN g % 10 = 0 THEN 'Name, \"quoted\" ' || g WHEN g % 17 = 0 THEN '=SUM(A' || g || ')' ELSE 'Member ' || g END,
                'x', now() - (g || ' minutes')::interval, now() - (g % 90 || ' days')::interval,
                now() - (g % 200 || ' days')::interval, g * 7 % 100000, g % 300, g % 60, 'Yoga'
         FROM generate_series(1, $2) AS g",
    )
    .bind(p.t.client_id)
    .bind(rows)
    .execute(&mut conn)
    .await?;
    eprintln!(
        "[bench] {rows} members loaded in {:.1} s",
        load.elapsed().as_secs_f64()
    );

    // The limit: COPY of the same query, consumed as a stream.
    let copy_sql = format!(
        "COPY (SELECT m.id, m.name, m.email, CASE WHEN m.last_active_at >= now() - interval '30 days' THEN 'active' ELSE 'inactive' END,
                      v.code, m.registered_at, m.first_active_at, m.last_active_at, (m.watch_seconds + 30) / 60,
                      m.class_views, m.active_days, m.favorite_category
               FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id
               WHERE m.client_id = '{}' ORDER BY m.registered_at, m.id) TO STDOUT WITH (FORMAT csv, HEADER)",
        p.t.client_id
    );
    let started = Instant::now();
    let mut stream = conn.copy_out_raw(&copy_sql).await?;
    let mut copy_bytes = 0usize;
    while let Some(chunk) = stream.try_next().await? {
        copy_bytes += chunk.len();
    }
    drop(stream);
    let copy = started.elapsed();

    // The product: the worker process builds the export.
    let mut child = app.worker_process(&[]);
    let pid = child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = portal_tests::proc_status_kib(pid, "VmHWM:");
    let started = Instant::now();
    let r = app
        .send(bearer(app.get("/partner/members/export"), &p.admin))
        .await;
    let job = r.accepted_job();
    let done = app.wait_export(&p.admin, &job, 600).await;
    let wall = started.elapsed();
    let peak_rss = portal_tests::proc_status_kib(pid, "VmHWM:");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rowsWritten"].as_i64(), Some(rows));
    let key: String = sqlx::query_scalar("SELECT storage_key FROM export_jobs WHERE id = $1::uuid")
        .bind(&job)
        .fetch_one(&app.db)
        .await?;
    let size = app
        .state
        .storage
        .store
        .head(&Storage::path(&key))
        .await?
        .size;
    let _ = child.start_kill();
    Ok(Measured {
        wall,
        size,
        copy,
        copy_bytes,
        peak_rss_kib: peak_rss,
        idle_rss_kib: idle_rss,
    })
}
