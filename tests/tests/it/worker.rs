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

/// Every job apalis queues passes through the queue's scheduled set, and apalis moves the due ones
/// to the active list inside one Redis script, as the arguments of one command: more than about
/// 8,000 at once is beyond what a Redis script can unpack, and the consumer polling it dies. A
/// backlog that large builds up whenever no worker takes jobs for a while (all stopped for a
/// deploy, or all busy while ClickHouse is away). It must still land when a worker starts.
#[tokio::test]
async fn a_backlog_of_more_batches_than_one_redis_script_can_move_lands_when_a_worker_starts() {
    use portal_shared::domain::ids::BatchId;
    use portal_shared::pipeline::{WatchBatch, WatchEvent};

    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let member = app.member_id(&p, "backlog@example.com", "Backlog").await;
    let now = chrono::Utc::now();
    let batches = 8_500;
    let queue = app.state.events.clone();
    let mut pushes = tokio::task::JoinSet::new();
    for chunk in 0..10 {
        let queue = queue.clone();
        let client = p.t.client_id;
        pushes.spawn(async move {
            for i in (chunk..batches).step_by(10) {
                let batch = WatchBatch {
                    batch_id: BatchId::new_v7(),
                    client_id: client,
                    member_id: member,
                    received_at: now,
                    events: vec![WatchEvent {
                        event_id: uuid::Uuid::new_v4(),
                        class_id: "yoga-1".into(),
                        started_at: now - chrono::Duration::seconds(3600 + i as i64),
                        watched_seconds: 60,
                    }],
                    seen_before: false,
                };
                queue.enqueue(batch).await.unwrap();
            }
        });
    }
    while let Some(r) = pushes.join_next().await {
        r.unwrap();
    }
    let worker = app.worker().await;
    assert_eq!(
        app.wait_for_count(portal_tests::LANDED, p.t.client_id, batches as i64, 90)
            .await,
        batches as i64
    );
    app.assert_counted_once(p.t.client_id, batches as i64, 20)
        .await;
    // Finished jobs leave nothing behind in Redis but their number: apalis would keep every
    // batch's events (the payload) and metadata for ever.
    let ns = portal_shared::jobs::queue_key(&app.namespace, WatchBatch::QUEUE);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = app.state.redis.clone();
        let payloads: u64 = redis::cmd("HLEN")
            .arg(format!("{ns}:data"))
            .query_async(&mut c)
            .await
            .unwrap();
        let metas: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}:meta:*"))
            .query_async(&mut c)
            .await
            .unwrap();
        if payloads == 0 && metas.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "finished jobs still in Redis: {payloads} payloads, {} metadata hashes",
            metas.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.queue_depth::<WatchBatch>().await.done,
        batches as u64,
        "the finished jobs are still counted"
    );
    worker.stop().await.unwrap();
}

/// A job the worker cannot read (its payload damaged in Redis, or queued by a later release in a
/// layout this one does not know) must neither stop the worker nor be dropped: the batches queued
/// beside it land, and it stays in Redis for an operator.
#[tokio::test]
async fn a_job_the_worker_cannot_read_stops_nothing_and_is_kept() {
    use portal_shared::domain::ids::BatchId;
    use portal_shared::pipeline::{WatchBatch, WatchEvent};

    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let member = app
        .member_id(&p, "unreadable@example.com", "Unreadable")
        .await;
    let now = chrono::Utc::now();
    let batch = || WatchBatch {
        batch_id: BatchId::new_v7(),
        client_id: p.t.client_id,
        member_id: member,
        received_at: now,
        events: vec![WatchEvent {
            event_id: uuid::Uuid::new_v4(),
            class_id: "yoga-1".into(),
            started_at: now - chrono::Duration::hours(1),
            watched_seconds: 60,
        }],
        seen_before: false,
    };
    let queue = app.state.events.clone();
    let ns = jobs::queue_key(&app.namespace, WatchBatch::QUEUE);
    let mut redis = app.state.redis.clone();
    // The first job queued, then its payload replaced by one of a later layout.
    queue.enqueue(batch()).await.unwrap();
    let ids: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{ns}:data"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "one job queued");
    let _: () = redis::cmd("HSET")
        .arg(format!("{ns}:data"))
        .arg(&ids[0])
        .arg(r#"{"batch_id":"not a batch","events":"AgAAAA=="}"#)
        .query_async(&mut redis)
        .await
        .unwrap();
    queue.enqueue(batch()).await.unwrap();
    let worker = app.worker().await;
    assert_eq!(
        app.wait_for_count(portal_tests::LANDED, p.t.client_id, 1, 20)
            .await,
        1,
        "the batch queued after the unreadable job lands"
    );
    // Still consuming afterwards.
    queue.enqueue(batch()).await.unwrap();
    assert_eq!(
        app.wait_for_count(portal_tests::LANDED, p.t.client_id, 2, 20)
            .await,
        2,
        "a batch queued later lands too"
    );
    let kept: Option<String> = redis::cmd("HGET")
        .arg(format!("{ns}:data"))
        .arg(&ids[0])
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(kept.is_some(), "the unreadable job is kept in Redis");
    // Answered with an error: apalis runs it again later (and after 25 runs keeps it as dead),
    // it is not taken for done.
    let config = queue.storage().get_config().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let later: Option<f64> = redis::cmd("ZSCORE")
            .arg(config.scheduled_jobs_set())
            .arg(&ids[0])
            .query_async(&mut redis)
            .await
            .unwrap();
        if later.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unreadable job is not scheduled to run again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done: bool = redis::cmd("SISMEMBER")
        .arg(config.done_jobs_set())
        .arg(&ids[0])
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!done, "the unreadable job is not taken for done");
    worker.stop().await.unwrap();
}
