//! The watch-event pipeline end to end: app → API → Redis → worker → ClickHouse + Postgres, and
//! the partner's dashboard, analytics and member figures computed from it.

use chrono::{Duration, TimeZone, Utc};
use portal_shared::pipeline::WatchBatch;
use portal_tests::{bearer, clickhouse_addr, event, key, Cuttable, TestApp, LANDED};
use serde_json::json;

#[tokio::test]
async fn events_appear_in_analytics_dashboard_and_member_figures() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (ann, ann_token) = app.member(&p, "ann@example.com", "Ann").await;
    let (_bob, bob_token) = app.member(&p, "bob@example.com", "Bob").await;
    let worker = app.worker().await;
    // Ann's two recent views must fall on one day of the partner (Europe/Berlin): in the first
    // three hours after local midnight, place them on the evening before.
    let local = Utc::now().with_timezone(&chrono_tz::Europe::Berlin);
    let now = if local.time() >= chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap() {
        Utc::now()
    } else {
        Utc::now() - Duration::hours(4)
    };
    let r = app
        .post_events(
            &p,
            &ann_token,
            json!([
                event("yoga-1", now - Duration::hours(2), 1200),
                event("yoga-2", now - Duration::hours(1), 630),
                event("hiit-1", now - Duration::days(3), 1500),
            ]),
        )
        .await;
    r.assert_status(202);
    assert_eq!(r.body["data"], json!({"accepted": 3, "duplicates": 0}));
    app.post_events(
        &p,
        &bob_token,
        json!([event("yoga-1", now - Duration::hours(5), 45)]),
    )
    .await
    .assert_status(202);
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 4, 20).await, 4);

    // Analytics over the last week.
    let a = app
        .send(bearer(app.get("/partner/analytics?period=week"), &p.viewer))
        .await;
    a.assert_status(200);
    let d = &a.body["data"];
    // 1200 + 630 + 1500 + 45 = 3375 s = 56.25 min → 56.
    assert_eq!(d["totals"]["watchTimeMinutes"], 56);
    assert_eq!(d["totals"]["classesWatched"], 4);
    assert_eq!(d["totals"]["activeMembers"], 2);
    assert_eq!(d["totals"]["avgWatchTimeMinutesPerActiveMember"], 28);
    assert_eq!(d["watchTimeByDay"].as_array().unwrap().len(), 7);
    let day_views: u64 = d["watchTimeByDay"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["classesWatched"].as_u64().unwrap())
        .sum();
    assert_eq!(day_views, 4);
    assert_eq!(
        d["popularCategories"][0],
        json!({"category": "Yoga", "watchTimeMinutes": 31, "views": 3})
    );
    assert_eq!(
        d["popularCategories"][1],
        json!({"category": "HIIT", "watchTimeMinutes": 25, "views": 1})
    );
    assert_eq!(d["popularClasses"][0]["classId"], "yoga-1");
    assert_eq!(d["popularClasses"][0]["title"], "Morning Flow");
    assert_eq!(d["popularClasses"][0]["views"], 2);

    // Dashboard (all-time totals) agrees.
    let dash = app
        .send(bearer(app.get("/partner/dashboard"), &p.viewer))
        .await;
    dash.assert_status(200);
    let dd = &dash.body["data"];
    assert_eq!(dd["totalMembers"], 2);
    assert_eq!(dd["activeMembers"], 2);
    assert_eq!(dd["totalWatchTimeMinutes"], 56);
    assert_eq!(dd["totalClassesWatched"], 4);
    assert_eq!(dd["trends"]["membersChange"], serde_json::Value::Null);
    assert_eq!(dd["trends"]["watchTimeChange"], serde_json::Value::Null);

    // Member figures.
    let m = app
        .send(bearer(
            app.get(&format!("/partner/members/{ann}?historyLimit=2")),
            &p.viewer,
        ))
        .await;
    m.assert_status(200);
    let md = &m.body["data"];
    assert_eq!(md["status"], "active");
    assert_eq!(md["stats"]["classesWatched"], 3);
    // 1200 + 630 + 1500 = 3330 s = 55.5 min → 56 (half up, once, on the sum).
    assert_eq!(md["stats"]["totalWatchTimeMinutes"], 56);
    assert_eq!(md["stats"]["favoriteCategory"], "Yoga");
    assert_eq!(md["stats"]["activeDays"], 2);
    let history = md["viewingHistory"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["classId"], "yoga-2");
    assert_eq!(history[0]["title"], "Evening Calm");
    assert_eq!(history[0]["watchedMinutes"], 11);
    assert_eq!(md["historyPagination"]["total"], 3);
    worker.stop().await.unwrap();
}

/// Waits (20 s at most) until a worker has built the seen-events filter from the ledger.
async fn filter_complete(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !app.state.seen.is_complete().await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker did not build the seen-events filter"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Repeats are found through the seen-events filter, and without it: when Redis loses the filter,
/// the API looks every event up in the ledger until a worker has rebuilt the filter from it.
#[tokio::test]
async fn repeats_are_found_with_the_seen_events_filter_and_after_it_is_lost() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "seen@example.com", "Seen").await;
    let worker = app.worker().await;
    filter_complete(&app).await;
    let id = |e: &serde_json::Value| uuid::Uuid::parse_str(e["eventId"].as_str().unwrap()).unwrap();
    let e1 = event("yoga-1", Utc::now() - Duration::minutes(30), 600);
    let e2 = event("hiit-1", Utc::now() - Duration::minutes(20), 300);
    let r = app.post_events(&p, &token, json!([e1, e2])).await;
    assert_eq!(r.body["data"], json!({"accepted": 2, "duplicates": 0}));
    // Accepted events are in the filter at once; the ledger decides once they landed.
    let seen = &app.state.seen;
    let fresh = uuid::Uuid::new_v4();
    let other = app.partner().await;
    assert_eq!(
        seen.check_and_add(p.t.client_id, &[id(&e1), fresh])
            .await
            .unwrap(),
        Some(vec![true, false])
    );
    // Another client's events are its own: the same id is new there.
    assert_eq!(
        seen.check_and_add(other.t.client_id, &[id(&e2)])
            .await
            .unwrap(),
        Some(vec![false])
    );
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 2, 20).await, 2);
    let e3 = event("pilates-1", Utc::now() - Duration::minutes(10), 120);
    let r = app.post_events(&p, &token, json!([e1, e3, e2])).await;
    assert_eq!(r.body["data"], json!({"accepted": 1, "duplicates": 2}));
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 3, 20).await, 3);

    // Redis loses the filter (a restart without persistence, say).
    let mut c = app.state.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:seen:*", app.namespace))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.len() >= 2, "filter and marker in Redis: {keys:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut c)
        .await
        .unwrap();
    // Incomplete now (unless a worker rebuilt it in this instant): no answer from the filter.
    let answer = seen.check_and_add(p.t.client_id, &[id(&e3)]).await.unwrap();
    assert!(answer.is_none() || answer == Some(vec![true]), "{answer:?}");
    let r = app.post_events(&p, &token, json!([e3, e1])).await;
    assert_eq!(r.body["data"], json!({"accepted": 0, "duplicates": 2}));
    // The worker rebuilds it from the ledger: the events counted before the loss are known again.
    filter_complete(&app).await;
    assert_eq!(
        seen.check_and_add(p.t.client_id, &[id(&e2), uuid::Uuid::new_v4()])
            .await
            .unwrap(),
        Some(vec![true, false])
    );
    let r = app.post_events(&p, &token, json!([e2])).await;
    assert_eq!(r.body["data"], json!({"accepted": 0, "duplicates": 1}));
    app.assert_counted_once(p.t.client_id, 3, 20).await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn duplicates_are_counted_once_within_and_across_batches() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "dup@example.com", "Dup").await;
    let worker = app.worker().await;
    let e1 = event("yoga-1", Utc::now() - Duration::minutes(30), 600);
    let e2 = event("hiit-1", Utc::now() - Duration::minutes(20), 300);
    let r = app.post_events(&p, &token, json!([e1, e1, e2])).await;
    assert_eq!(r.body["data"], json!({"accepted": 2, "duplicates": 1}));
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 2, 20).await, 2);
    // The app retries the whole batch: everything is a duplicate now.
    let r = app.post_events(&p, &token, json!([e1, e2])).await;
    r.assert_status(202);
    assert_eq!(r.body["data"], json!({"accepted": 0, "duplicates": 2}));
    // Retries racing each other before any landed are also counted once.
    let e3 = event("pilates-1", Utc::now() - Duration::minutes(5), 120);
    for _ in 0..5 {
        app.post_events(&p, &token, json!([e3]))
            .await
            .assert_status(202);
    }
    app.assert_counted_once(p.t.client_id, 3, 20).await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_day_boundary_in_the_clients_timezone_lands_on_the_local_day() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    // Pacific/Auckland is UTC+13 in November: 11:30 UTC on day D is 00:30 on D+1 there.
    sqlx::query("UPDATE clients SET timezone = 'Pacific/Auckland' WHERE id = $1")
        .bind(p.t.client_id)
        .execute(&app.db)
        .await
        .unwrap();
    let (_m, token) = app.member(&p, "kiwi@example.com", "Kiwi").await;
    let worker = app.worker().await;
    let base = (Utc::now() - Duration::days(3)).date_naive();
    let before = Utc.from_utc_datetime(&base.and_hms_opt(10, 30, 0).unwrap()); // 23:30 local, day D
    let after = Utc.from_utc_datetime(&base.and_hms_opt(11, 30, 0).unwrap()); // 00:30 local, day D+1
    app.post_events(
        &p,
        &token,
        json!([event("yoga-1", before, 60), event("yoga-1", after, 120)]),
    )
    .await
    .assert_status(202);
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 2, 20).await, 2);
    let d = |s: chrono::NaiveDate| s.format("%Y-%m-%d").to_string();
    let q = format!(
        "/partner/analytics?startDate={}&endDate={}",
        d(base),
        d(base.succ_opt().unwrap().succ_opt().unwrap())
    );
    let r = app.send(bearer(app.get(&q), &p.admin)).await;
    r.assert_status(200);
    let days = r.body["data"]["watchTimeByDay"].as_array().unwrap().clone();
    // 10:30 UTC on `base` is 23:30 on `base` in Auckland; 11:30 UTC is 00:30 on base+1.
    let views: Vec<(String, u64)> = days
        .iter()
        .map(|p| {
            (
                p["date"].as_str().unwrap().to_string(),
                p["classesWatched"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        views,
        vec![
            (d(base), 1),
            (d(base.succ_opt().unwrap()), 1),
            (d(base.succ_opt().unwrap().succ_opt().unwrap()), 0)
        ]
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn analytics_ranges_are_validated() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    for q in [
        "period=year",
        "period=week&startDate=2026-01-01&endDate=2026-01-02",
        "startDate=2026-01-02&endDate=2026-01-01",
        "startDate=2024-01-01&endDate=2026-01-01",
        "startDate=2026-01-01",
        "endDate=2026-01-01",
        "startDate=01-01-2026&endDate=2026-01-02",
    ] {
        app.send(bearer(
            app.get(&format!("/partner/analytics?{q}")),
            &p.admin,
        ))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    }
    let r = app
        .send(bearer(
            app.get("/partner/analytics?startDate=2026-01-01&endDate=2026-12-31"),
            &p.admin,
        ))
        .await;
    r.assert_status(200);
    assert_eq!(
        r.body["data"]["watchTimeByDay"].as_array().unwrap().len(),
        365
    );
    assert_eq!(
        r.body["data"]["range"],
        json!({"startDate": "2026-01-01", "endDate": "2026-12-31"})
    );
    let r = app
        .send(bearer(app.get("/partner/analytics"), &p.admin))
        .await;
    assert_eq!(
        r.body["data"]["watchTimeByDay"].as_array().unwrap().len(),
        30
    );
    assert_eq!(r.body["data"]["totals"]["activeMembers"], 0);
}

#[tokio::test]
async fn bad_event_batches_are_rejected_whole() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "bad@example.com", "Bad").await;
    let now = Utc::now();
    let r = app
        .post_events(
            &p,
            &token,
            json!([event("yoga-1", now, 60), event("nope", now, 60), {"eventId": "x"}]),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.error_fields();
    assert!(
        fields.contains(&"events[1].classId") && fields.contains(&"events[2].eventId"),
        "{fields:?}"
    );
    app.post_events(&p, &token, json!([]))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let many: Vec<_> = (0..501).map(|_| event("yoga-1", now, 60)).collect();
    app.post_events(&p, &token, json!(many))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // Partner tokens, missing tokens and other clients' member tokens are refused.
    let q = app.partner().await;
    let (_o, other_token) = app.member(&q, "other@example.com", "Other").await;
    app.post_events(&p, &other_token, json!([event("yoga-1", now, 60)]))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.post_events(&p, &p.admin, json!([event("yoga-1", now, 60)]))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let d = app.queue_depth::<WatchBatch>().await;
    assert_eq!(d.pending + d.running, 0, "nothing was queued");
}

#[tokio::test]
async fn redis_down_answers_503_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "r@example.com", "R").await;
    let (down, proxy) = app.sibling_behind_redis_proxy().await;
    proxy.cut();
    let r = down
        .post_events(&p, &token, json!([event("yoga-1", Utc::now(), 60)]))
        .await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        app.count(
            "SELECT count(*) FROM watch_event_receipts WHERE client_id = $1",
            p.t.client_id
        )
        .await,
        0
    );
    // Back up: the same request is accepted.
    proxy.restore();
    let status = down
        .send_until(202, 4, || {
            bearer(key(down.post("/app/events"), &p.t.api_key), &token)
                .json(&json!({ "events": [event("yoga-1", Utc::now(), 60)] }))
        })
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn events_wait_while_clickhouse_is_down_and_land_once_it_returns() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "ch@example.com", "CH").await;
    let proxy = Cuttable::new(&clickhouse_addr()).await;
    let worker = app
        .worker_with(|v| {
            v.insert("CLICKHOUSE_URL".into(), format!("http://{}", proxy.addr));
        })
        .await;
    proxy.cut();
    for i in 0..5 {
        app.post_events(
            &p,
            &token,
            json!([event("yoga-1", Utc::now() - Duration::minutes(i), 60)]),
        )
        .await
        .assert_status(202);
    }
    // The worker has taken the batches and then tried ClickHouse (and was refused).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.queue_depth::<WatchBatch>().await.pending > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker took no batch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    proxy.wait_refused_beyond(proxy.refused(), 20).await;
    assert_eq!(
        app.count(LANDED, p.t.client_id).await,
        0,
        "nothing lands while ClickHouse is down"
    );
    proxy.restore();
    app.assert_counted_once(p.t.client_id, 5, 30).await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn two_workers_on_one_queue_count_each_event_once() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "two@example.com", "Two").await;
    let w1 = app.worker().await;
    let w2 = app.worker().await;
    let mut all = Vec::new();
    for b in 0..20 {
        let batch: Vec<_> = (0..25)
            .map(|i| event("yoga-1", Utc::now() - Duration::minutes(b * 25 + i), 60))
            .collect();
        all.extend(batch.clone());
        app.post_events(&p, &token, json!(batch))
            .await
            .assert_status(202);
    }
    // Every batch again (app retries) while both workers consume.
    for chunk in all.chunks(100) {
        app.post_events(&p, &token, json!(chunk))
            .await
            .assert_status(202);
    }
    app.assert_counted_once(p.t.client_id, 500, 30).await;
    w1.stop().await.unwrap();
    w2.stop().await.unwrap();
}

#[tokio::test]
async fn no_partner_sees_another_partners_events() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let a = app.partner().await;
    let b = app.partner().await;
    let (_m, token) = app.member(&a, "a@example.com", "A").await;
    let worker = app.worker().await;
    app.post_events(
        &a,
        &token,
        json!([event("hiit-1", Utc::now() - Duration::minutes(20), 900)]),
    )
    .await
    .assert_status(202);
    assert_eq!(app.wait_for_count(LANDED, a.t.client_id, 1, 20).await, 1);
    let r = app
        .send(bearer(app.get("/partner/analytics"), &b.admin))
        .await;
    assert_eq!(r.body["data"]["totals"]["classesWatched"], 0);
    assert_eq!(r.body["data"]["popularClasses"], json!([]));
    let r = app
        .send(bearer(app.get("/partner/dashboard"), &b.admin))
        .await;
    assert_eq!(r.body["data"]["totalClassesWatched"], 0);
    let r = app
        .send(bearer(app.get("/partner/analytics"), &a.admin))
        .await;
    assert_eq!(r.body["data"]["totals"]["classesWatched"], 1);
    worker.stop().await.unwrap();
}

/// Jobs waiting or running on the watch-event queue of this app.
async fn queued_batches(app: &TestApp) -> u64 {
    let d = app.queue_depth::<WatchBatch>().await;
    d.pending + d.running
}

#[tokio::test]
async fn implausible_watch_times_are_rejected_with_a_reason_per_event() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "plausible@example.com", "Plausible").await;
    let now = Utc::now();
    // yoga-2 lasts 20 minutes: at most 4 × 1200 = 4800 s per view.
    let r = app
        .post_events(
            &p,
            &token,
            json!([
                event("yoga-1", now - Duration::minutes(10), 600),
                // Started 10 minutes ago, watched for 11 minutes 40 seconds.
                event("yoga-1", now - Duration::minutes(10), 700),
                event("yoga-2", now - Duration::hours(3), 4801),
                // Both rules at once.
                event("yoga-2", now - Duration::minutes(1), 86_400),
            ]),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        r.error_fields(),
        [
            "events[1].watchedSeconds",
            "events[2].watchedSeconds",
            "events[3].watchedSeconds"
        ],
        "{}",
        r.text
    );
    let messages: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert!(messages[0].contains("since startedAt"), "{}", messages[0]);
    assert!(messages[1].contains("4 ×"), "{}", messages[1]);
    assert!(messages[1].contains("4800"), "{}", messages[1]);
    assert!(messages[2].contains("since startedAt"), "{}", messages[2]);
    assert_eq!(queued_batches(&app).await, 0, "nothing was queued");
    // At the limits: the time since the start plus 60 s, and exactly 4 × the duration.
    let r = app
        .post_events(
            &p,
            &token,
            json!([
                event("yoga-1", now - Duration::minutes(10), 660),
                event("yoga-1", now, 60),
                event("yoga-2", now - Duration::hours(3), 4800),
            ]),
        )
        .await;
    r.assert_status(202);
    assert_eq!(r.body["data"]["accepted"], 3);
    assert_eq!(queued_batches(&app).await, 1);
}

#[tokio::test]
async fn a_member_over_the_events_per_minute_limit_gets_429_and_nothing_is_queued() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MEMBER_EVENTS_PER_MINUTE".into(), "10".into());
    })
    .await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_a, ann) = app.member(&p, "ann@example.com", "Ann").await;
    let (_b, bob) = app.member(&p, "bob@example.com", "Bob").await;
    let batch = |n: i64| -> serde_json::Value {
        json!((0..n)
            .map(|i| event("yoga-1", Utc::now() - Duration::minutes(i + 1), 60))
            .collect::<Vec<_>>())
    };
    // Events count, not requests: 6 pass, then 5 more would make 11.
    app.post_events(&p, &ann, batch(6)).await.assert_status(202);
    let r = app.post_events(&p, &ann, batch(5)).await;
    r.assert_error(429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        queued_batches(&app).await,
        1,
        "the refused batch was not queued"
    );
    // A refused batch costs nothing: the 4 that remain can still be sent.
    app.post_events(&p, &ann, batch(4)).await.assert_status(202);
    app.post_events(&p, &ann, batch(1))
        .await
        .assert_error(429, "RATE_LIMITED");
    // An invalid batch is refused for what it is and costs nothing either.
    app.post_events(&p, &bob, json!([event("nope", Utc::now(), 60)]))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // The limit is per member.
    app.post_events(&p, &bob, batch(10))
        .await
        .assert_status(202);
    assert_eq!(queued_batches(&app).await, 3);
    // The OpenAPI document says so.
    let doc = app.send(app.get("/openapi.json")).await;
    assert!(doc.body["paths"]["/app/events"]["post"]["responses"]["429"].is_object());
}

#[tokio::test]
async fn member_events_per_minute_zero_turns_the_limit_off() {
    let app = TestApp::spawn_with(|v| {
        v.insert("MEMBER_EVENTS_PER_MINUTE".into(), "0".into());
    })
    .await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "bulk@example.com", "Bulk").await;
    // 1,500 events in a minute: over the default of 1,000.
    for b in 0..3 {
        let events: Vec<_> = (0..500)
            .map(|i| {
                event(
                    "yoga-1",
                    Utc::now() - Duration::minutes(b * 500 + i + 1),
                    60,
                )
            })
            .collect();
        app.post_events(&p, &token, json!(events))
            .await
            .assert_status(202);
    }
    assert_eq!(queued_batches(&app).await, 3);
}

/// The duplicate pre-check of `POST /app/events` looks each id up on the ledger's unique key, also
/// for a client holding all of a ledger loaded without `ANALYZE`: asked as
/// `client_id = $1 AND event_id = ANY($2)`, Postgres read the client's whole range of the index
/// there (30,000 entries for 100 ids) and filtered it.
#[tokio::test]
async fn the_duplicate_pre_check_reads_one_index_entry_per_id_without_statistics() {
    use portal_shared::pg::receipts;
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    sqlx::query(
        "INSERT INTO watch_event_receipts (client_id, event_id, batch_id)
         SELECT $1, gen_random_uuid(), gen_random_uuid() FROM generate_series(1, 30000)",
    )
    .bind(p.t.client_id)
    .execute(&app.db)
    .await
    .unwrap();
    let mut ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM watch_event_receipts WHERE client_id = $1 LIMIT 10",
    )
    .bind(p.t.client_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    ids.extend((0..90).map(|_| uuid::Uuid::new_v4()));
    // One connection, so the statistics this test reads are the pre-check's own.
    let one = app.single_connection().await;
    let entries_read = |one: sqlx::PgPool| async move {
        portal_tests::flushed_statistics::<(i64,)>(
            &one,
            "SELECT idx_tup_read FROM pg_stat_user_indexes
             WHERE indexrelname = 'watch_event_receipts_pkey'",
        )
        .await[0]
            .0
    };
    let before = entries_read(one.clone()).await;
    for _ in 0..6 {
        assert_eq!(
            receipts::already_received(&one, p.t.client_id, &ids)
                .await
                .unwrap(),
            10
        );
    }
    let read = entries_read(one).await - before;
    assert!(
        read <= 6 * 100,
        "the pre-check read {read} index entries for 6 × 100 ids"
    );
}

#[tokio::test]
async fn pruning_reads_only_the_ledger_pages_written_since_the_last_prune() {
    use portal_shared::pg::receipts;
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let add = |n: i64, age: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query(
                "INSERT INTO watch_event_receipts (client_id, event_id, batch_id, received_at)
                 SELECT $1, gen_random_uuid(), gen_random_uuid(), now() - $3::text::interval
                 FROM generate_series(1, $2)",
            )
            .bind(p.t.client_id)
            .bind(n)
            .bind(age)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    // Receipts past the 35 days, then 60,000 young ones (about 600 pages, five BRIN ranges),
    // as on this test database's Postgres with autovacuum off: no range is summarized.
    add(500, "40 days").await;
    add(60_000, "1 minute").await;
    sqlx::query("INSERT INTO landed_watch_batches (batch_id, landed_at) VALUES (gen_random_uuid(), now() - interval '40 days')")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(receipts::prune(&app.db).await.unwrap(), 500);
    let left = |sql: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        left("SELECT count(*) FROM watch_event_receipts").await,
        60_000
    );
    assert_eq!(left("SELECT count(*) FROM landed_watch_batches").await, 0);
    // The next prune, after more receipts, reads the range that held the old receipts and the
    // new pages, not the whole ledger again.
    add(1_000, "1 minute").await;
    let one = app.single_connection().await;
    let pages_read = |one: sqlx::PgPool| async move {
        portal_tests::flushed_statistics::<(i64,)>(
            &one,
            "SELECT heap_blks_read + heap_blks_hit FROM pg_statio_user_tables
             WHERE relname = 'watch_event_receipts'",
        )
        .await[0]
            .0
    };
    let table_pages: i64 = left("SELECT pg_relation_size('watch_event_receipts') / 8192").await;
    let before = pages_read(one.clone()).await;
    assert_eq!(receipts::prune(&one).await.unwrap(), 0);
    let read = pages_read(one).await - before;
    assert!(
        table_pages > 500 && read < 200,
        "the second prune read {read} of the ledger's {table_pages} pages"
    );
}
