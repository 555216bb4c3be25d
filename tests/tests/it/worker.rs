//! The worker process: starts against real Redis/ClickHouse, consumes jobs, stops gracefully.

use std::time::Duration;

use portal_shared::jobs::{self, Housekeeping, Job};
use portal_tests::TestApp;

#[tokio::test]
async fn worker_processes_housekeeping_and_shuts_down_gracefully() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    // An expired refresh token (past the 7-day grace) that housekeeping must delete.
    let staff = portal_shared::pg::unscoped::staff_for_login(&app.db, &t.admin_email)
        .await
        .unwrap()
        .unwrap();
    let token = portal_shared::pg::sessions::issue_new(
        &app.db,
        t.client_id,
        portal_shared::pg::sessions::Subject::Staff(staff.id),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '8 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(!token.is_empty());

    let state = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(portal_worker::run_until(state, async move {
        let _ = stop_rx.await;
    }));

    let cfg = app.config();
    jobs::Queue::<Housekeeping>::open(app.state.redis.clone(), &cfg)
        .enqueue(Housekeeping {
            requested_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    let mut left = 1;
    for _ in 0..100 {
        left = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refresh_tokens")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "housekeeping job was not processed within 10 s");

    stop_tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("worker stops within the shutdown timeout")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn worker_with_no_jobs_starts_and_stops() {
    let app = TestApp::spawn().await;
    let state = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(portal_worker::run_until(state, async move {
        let _ = stop_rx.await;
    }));
    // Every consumer has registered with its queue (the worker is consuming), and the worker
    // has not stopped on its own.
    let cfg = app.config();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for queue in [
        <Housekeeping as Job>::QUEUE,
        <portal_shared::jobs::exports::ExportJob as Job>::QUEUE,
        <portal_shared::pipeline::WatchBatch as Job>::QUEUE,
    ] {
        let key = format!("{}:workers", jobs::queue_key(&cfg.redis_namespace, queue));
        loop {
            let mut c = app.state.redis.clone();
            let n: u64 = redis::cmd("ZCARD")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            if n > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no consumer on {queue}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        !worker.is_finished(),
        "worker must keep running until told to stop"
    );
    stop_tx.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("stops promptly")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
