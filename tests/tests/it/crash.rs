//! Crashes and their recovery: a worker killed with SIGKILL mid-task, a flush interrupted between
//! the ClickHouse insert and the Postgres landing, an export whose worker is killed while building
//! it, and a large claim (split into parallel chunks) resuming an interrupted one. Nothing is lost
//! and nothing is counted twice.

use std::time::Duration;

use chrono::Utc;
use portal_shared::domain::ids::{BatchId, MemberId};
use portal_shared::pipeline::{self, ChEvent, WatchBatch, WatchEvent};
use portal_tests::{event, Partner, TestApp, LANDED};
use serde_json::json;
use uuid::Uuid;

/// A worker that beats every second and counts as dead after two missed beats, so another one
/// re-queues its tasks within seconds.
const QUICK_HEARTBEAT: [(&str, &str); 2] = [
    ("WORKER_HEARTBEAT_SECS", "1"),
    ("WORKER_MISSED_HEARTBEATS", "2"),
];

/// The real `portal-worker` process with [`QUICK_HEARTBEAT`] and `extra` variables.
fn worker_process(app: &TestApp, extra: &[(&str, &str)]) -> tokio::process::Child {
    let vars: Vec<(&str, &str)> = QUICK_HEARTBEAT.iter().chain(extra).copied().collect();
    app.worker_process(&vars)
}

#[tokio::test]
async fn tasks_of_a_killed_worker_are_processed_by_another_and_counted_once() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "kill@example.com", "Kill").await;
    // A worker process that takes tasks and holds them (flushes only after a minute).
    let mut child = worker_process(
        &app,
        &[
            ("EVENTS_FLUSH_MS", "60000"),
            ("EVENTS_FLUSH_ROWS", "1000000"),
        ],
    );
    for b in 0..4 {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                event(
                    "yoga-1",
                    Utc::now() - chrono::Duration::minutes(b * 10 + i),
                    60,
                )
            })
            .collect();
        app.post_events(&p, &token, json!(batch))
            .await
            .assert_status(202);
    }
    // Wait until the process holds the tasks.
    let mut running = 0;
    for _ in 0..100 {
        let d = app.queue_depth::<WatchBatch>().await;
        running = d.running;
        if d.running == 4 && d.pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 4, "the doomed worker took the tasks");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    assert_eq!(app.count(LANDED, p.t.client_id).await, 0);
    // Another worker (same heartbeat settings) re-queues and lands them.
    let rescuer = app
        .worker_with(|v| {
            for (k, val) in QUICK_HEARTBEAT {
                v.insert(k.into(), val.into());
            }
        })
        .await;
    // Every task, the dead worker's included, is consumed; each event counted once.
    app.assert_counted_once(p.t.client_id, 40, 30).await;
    rescuer.stop().await.unwrap();
}

/// An app with the catalogue and a partner with one member; returns the member's id too.
async fn app_with_member(email: &str, name: &str) -> (TestApp, Partner, MemberId) {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let member = app.member_id(&p, email, name).await;
    (app, p, member)
}

/// A claimable 60-second view of yoga-1 by `member` in batch `batch_id`, received at `now`.
fn pending_view(
    p: &Partner,
    member: MemberId,
    batch_id: BatchId,
    started_at: chrono::DateTime<Utc>,
    now: chrono::DateTime<Utc>,
) -> pipeline::Pending {
    pipeline::Pending {
        batch_id,
        likely_new: true,
        row: ChEvent {
            client_id: p.t.client_id,
            event_id: Uuid::new_v4(),
            member_id: member,
            class_id: "yoga-1".into(),
            category: "Yoga".into(),
            started_at,
            local_date: now.date_naive(),
            watched_seconds: 60,
            received_at: now,
        },
    }
}

#[tokio::test]
async fn a_flush_interrupted_after_the_clickhouse_insert_is_finished_without_duplicates() {
    let (app, p, member) = app_with_member("resume@example.com", "Resume").await;
    let now = Utc::now();
    let batch = WatchBatch {
        batch_id: BatchId::new_v7(),
        client_id: p.t.client_id,
        member_id: member,
        received_at: now,
        events: (0..3)
            .map(|i| WatchEvent {
                event_id: Uuid::new_v4(),
                class_id: "yoga-1".into(),
                started_at: now - chrono::Duration::minutes(i),
                watched_seconds: 100,
            })
            .collect(),
        seen_before: false,
    };
    // What a worker did before it died: claimed all three, inserted two into ClickHouse.
    let pending: Vec<pipeline::Pending> = batch
        .events
        .iter()
        .map(|e| pipeline::Pending {
            batch_id: batch.batch_id,
            likely_new: true,
            row: ChEvent {
                client_id: batch.client_id,
                event_id: e.event_id,
                member_id: member,
                class_id: e.class_id.clone(),
                category: "Yoga".into(),
                started_at: e.started_at,
                local_date: e.started_at.date_naive(),
                watched_seconds: e.watched_seconds,
                received_at: now,
            },
        })
        .collect();
    let claim = pipeline::claim(&app.db, &pending).await.unwrap();
    assert_eq!(claim.fresh.len(), 3);
    app.insert_ch_events(pending[..2].iter().map(|p| p.row.clone()))
        .await;
    // The task is redelivered.
    app.state.events.enqueue(batch.clone()).await.unwrap();
    let worker = app.worker().await;
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 3, 20).await, 3);
    let rows = app.ch_rows(p.t.client_id).await;
    assert_eq!(
        rows, 3,
        "the two rows already in ClickHouse were not inserted again"
    );
    let views = app.class_views(p.t.client_id).await;
    assert_eq!(views, 3);
    // A second redelivery (e.g. the ack was lost) changes nothing.
    let done = app.queue_depth::<WatchBatch>().await.done;
    app.state.events.enqueue(batch).await.unwrap();
    app.wait_queue_done_beyond::<WatchBatch>(done, 20).await;
    app.assert_counted_once(p.t.client_id, 3, 20).await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_export_whose_worker_is_killed_mid_way_is_finished_by_another() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    for i in 0..25 {
        app.member(&p, &format!("m{i}@example.com"), &format!("Member {i}"))
            .await;
    }
    // The doomed worker takes the job and is caught mid-way: the members table is locked, so
    // the job is `running` with its file begun and nothing written yet.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut child = worker_process(&app, &[]);
    let r = app
        .send(portal_tests::bearer(
            app.get("/partner/members/export"),
            &p.admin,
        ))
        .await;
    let job = r.accepted_job();
    let running = app
        .wait_export_status(&p.admin, &job, &["running"], 30)
        .await;
    assert_eq!(running["status"], "running", "{running}");
    let dir = std::path::Path::new(&app.vars["EXPORT_DIR"])
        .join("exports")
        .join(p.t.client_id.to_string());
    let staged = dir.join(format!("{job}.csv#1"));
    for _ in 0..200 {
        if staged.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(staged.exists(), "the doomed worker began the file");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    lock.rollback().await.unwrap();
    // Another worker re-queues the dead one's task and builds the whole file.
    let rescuer = app
        .worker_with(|v| {
            for (k, val) in QUICK_HEARTBEAT {
                v.insert(k.into(), val.into());
            }
        })
        .await;
    let done = app.wait_export(&p.admin, &job, 60).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rowsWritten"], 25);
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM export_jobs WHERE id = $1")
        .bind(Uuid::parse_str(&job).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(attempts, 2, "built once by each worker");
    let csv = app.download_export(&p.admin, &job).await;
    csv.assert_status(200);
    let ids: Vec<String> = csv::Reader::from_reader(csv.text.as_bytes())
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect();
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM members WHERE client_id = $1 ORDER BY registered_at, id",
    )
    .bind(p.t.client_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(ids, expected, "every member once, in order");
    // The killed worker's partial file is left beside the finished one until housekeeping
    // sweeps it (after a day; here at once).
    assert!(staged.exists(), "the interrupted upload's partial file");
    assert_eq!(
        app.state
            .storage
            .sweep_abandoned(Duration::from_secs(3600))
            .await,
        0,
        "a fresh partial file is kept (it may be an upload in progress)"
    );
    assert_eq!(app.state.storage.sweep_abandoned(Duration::ZERO).await, 1);
    assert!(!staged.exists());
    assert!(dir.join(format!("{job}.csv")).exists(), "the export stays");
    rescuer.stop().await.unwrap();
}

#[tokio::test]
async fn a_large_claim_in_parallel_chunks_owns_each_event_once() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let member = app.member_id(&p, "bulk@example.com", "Bulk").await;
    let now = Utc::now();
    // 12,000 events in batches of 100: more than one claim chunk.
    let batches: Vec<BatchId> = (0..120).map(|_| BatchId::new_v7()).collect();
    let pending: Vec<pipeline::Pending> = (0..12_000)
        .map(|i| pending_view(&p, member, batches[i / 100], now, now))
        .collect();
    // An earlier delivery of the same batches claimed the first 3,000 and died (resumable)…
    let earlier = pipeline::claim(&app.db, &pending[..3_000]).await.unwrap();
    assert_eq!(earlier.fresh.len(), 3_000);
    // …and another batch, already landed, holds 500 of the event ids (not ours to count).
    let other = BatchId::new_v7();
    let foreign: Vec<pipeline::Pending> = pending[3_000..3_500]
        .iter()
        .map(|e| pipeline::Pending {
            batch_id: other,
            likely_new: true,
            row: e.row.clone(),
        })
        .collect();
    assert_eq!(
        pipeline::claim(&app.db, &foreign)
            .await
            .unwrap()
            .fresh
            .len(),
        500
    );
    sqlx::query("INSERT INTO landed_watch_batches (batch_id) VALUES ($1)")
        .bind(other)
        .execute(&app.db)
        .await
        .unwrap();
    // The same event twice in one flush is claimed once. Whether the API saw the events before
    // only picks the statement (a third are claimed with conflict handling from the start, the
    // rest by a plain insert that meets the existing receipts and falls back): same outcome.
    let mut all: Vec<pipeline::Pending> = pending
        .iter()
        .enumerate()
        .map(|(i, e)| pipeline::Pending {
            likely_new: i % 3 != 0,
            ..e.clone()
        })
        .collect();
    all.push(pending[11_999].clone());
    let claim = pipeline::claim(&app.db, &all).await.unwrap();
    assert_eq!(claim.fresh.len(), 8_500);
    assert_eq!(claim.resumed.len(), 3_000);
    for e in &pending[3_000..3_500] {
        let key = (e.row.client_id, e.row.event_id);
        assert!(!claim.fresh.contains(&key) && !claim.resumed.contains(&key));
    }
    for e in &pending[..3_000] {
        assert!(claim.resumed.contains(&(e.row.client_id, e.row.event_id)));
    }
    let receipts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM watch_event_receipts WHERE client_id = $1")
            .bind(p.t.client_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(receipts, 12_000);
    // Claimed again (a redelivery after everything landed), nothing is owned.
    sqlx::query("INSERT INTO landed_watch_batches (batch_id) SELECT * FROM UNNEST($1::uuid[])")
        .bind(&batches)
        .execute(&app.db)
        .await
        .unwrap();
    let again = pipeline::claim(&app.db, &pending).await.unwrap();
    assert!(again.fresh.is_empty() && again.resumed.is_empty());
}

#[tokio::test]
async fn two_landers_holding_one_batch_at_once_land_it_once() {
    let (app, p, member) = app_with_member("twice@example.com", "Twice").await;
    // Two worker processes' connections: both hold the same batch at once (redelivered to the
    // second while the first still runs).
    let first = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let second = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let now = Utc::now();
    let rounds: i64 = 8;
    let per_batch: i64 = 50;
    for round in 0..rounds {
        let batch_id = BatchId::new_v7();
        let pending: Vec<pipeline::Pending> = (0..per_batch)
            .map(|i| {
                let started_at = now - chrono::Duration::minutes(round * per_batch + i);
                pending_view(&p, member, batch_id, started_at, now)
            })
            .collect();
        if round % 2 == 0 {
            // An earlier delivery claimed the receipts and died before inserting: both landers
            // resume the batch, each asking ClickHouse what is there before inserting.
            assert_eq!(
                pipeline::claim(&app.db, &pending)
                    .await
                    .unwrap()
                    .fresh
                    .len(),
                per_batch as usize
            );
        }
        let (a, b) = tokio::join!(
            pipeline::land_pending(&first.db, &first.ch, &pending),
            pipeline::land_pending(&second.db, &second.ch, &pending),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.events_counted + b.events_counted,
            per_batch as usize,
            "round {round}: the batch is counted by one lander"
        );
    }
    let unique = rounds * per_batch;
    assert_eq!(app.count(LANDED, p.t.client_id).await, unique);
    assert_eq!(app.class_views(p.t.client_id).await, unique);
    assert_eq!(
        app.ch_rows(p.t.client_id).await,
        unique as u64,
        "ClickHouse holds each event once"
    );
}
