//! The read cache of dashboard, analytics, funnel, billing and member-list answers: a repeated read does no
//! database work, and yet every change reaches every API instance at once: landings (announced by
//! the worker), API writes (announced by the instance that made them), catalogue imports
//! (announced by `portal-admin`); the TTL is only the fallback.

use std::time::{Duration, Instant};

use chrono::Utc;
use portal_shared::announce;
use portal_shared::domain::ids::{ClientId, MemberId};
use portal_shared::pipeline::ChEvent;
use portal_tests::{bearer, event, key, month_query, TestApp, LANDED, PASSWORD};
use salvo::test::{RequestBuilder, ResponseExt};
use salvo::Service;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::staff::instance;

/// A TTL far longer than any test: what shows up quickly was announced.
const LONG_TTL: &str = "300";

/// When the test views happened.
fn views_at() -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::minutes(15)
}

/// Status, `Content-Type` and body text of a request to one instance.
async fn fetch(service: &Service, req: RequestBuilder) -> (u16, String, String) {
    let mut res = req.send(service).await;
    let text = res.take_string().await.unwrap_or_default();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        res.status_code.map(|s| s.as_u16()).unwrap_or(200),
        ctype,
        text,
    )
}

/// The `data` of a successful answer of one instance.
async fn data(service: &Service, req: RequestBuilder) -> Value {
    let (status, _, text) = fetch(service, req).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["data"].clone()
}

/// Polls `req` on `service` until `pointer` of its data is `want`, at most `within`; returns how
/// long that took.
async fn until_shows(
    service: &Service,
    req: impl Fn() -> RequestBuilder,
    pointer: &str,
    want: Value,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let d = data(service, req()).await;
        if d.pointer(pointer) == Some(&want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{pointer} still {:?} (not {want}) after {:?}",
            d.pointer(pointer),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A member written straight into Postgres (no API, so nothing is announced).
async fn insert_member(app: &TestApp, client: ClientId, name: &str) -> MemberId {
    sqlx::query_scalar(
        "INSERT INTO members (id, client_id, email, name, password_hash)
         VALUES (gen_random_uuid(), $1, $2, $3, 'x') RETURNING id",
    )
    .bind(client)
    .bind(format!("{}@example.com", Uuid::new_v4().simple()))
    .bind(name)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// `n` views of yoga-1 written straight into ClickHouse (no worker, nothing announced).
async fn insert_views(app: &TestApp, client: ClientId, member: MemberId, n: usize) {
    let at = views_at();
    let day = at.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    app.insert_ch_events((0..n).map(|_| ChEvent {
        client_id: client,
        event_id: Uuid::new_v4(),
        member_id: member,
        class_id: "yoga-1".into(),
        category: "Yoga".into(),
        started_at: at,
        local_date: day,
        watched_seconds: 600,
        received_at: at,
    }))
    .await;
}

/// `month=…&year=…` of the partner's (Berlin's) month of [`views_at`].
fn this_month() -> String {
    month_query(views_at().with_timezone(&chrono_tz::Europe::Berlin))
}

/// Lets the announcements of the API writes made so far reach every instance (each instance
/// also hears its own), so that none arrives after the answers a test goes on to cache.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// An app whose read cache keeps answers `ttl` seconds (`READ_CACHE_TTL_SECS`).
async fn with_read_cache(ttl: &str) -> TestApp {
    TestApp::spawn_with(|v| {
        v.insert("READ_CACHE_TTL_SECS".into(), ttl.into());
    })
    .await
}

/// Waits until `n` API instances listen for changed clients.
async fn listening(app: &TestApp, n: i64) {
    app.wait_listeners(&announce::clients_changed_channel(&app.namespace), n)
        .await;
}

async fn publish(app: &TestApp, payload: &str) {
    let mut conn = app.state.redis.clone();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(announce::clients_changed_channel(&app.namespace))
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_repeated_read_is_served_from_the_cache_until_the_client_is_announced() {
    let app = with_read_cache(LONG_TTL).await;
    app.catalogue().await;
    listening(&app, 1).await;
    let p = app.partner().await;
    let (_, member_token) = app.member(&p, "ann@example.com", "Ann").await;
    let dashboard = || bearer(app.get("/partner/dashboard"), &p.admin);
    let analytics = || bearer(app.get("/partner/analytics?period=week"), &p.admin);
    let billing = || {
        bearer(
            app.get(&format!("/partner/billing?{}", this_month())),
            &p.admin,
        )
    };
    let members = || bearer(app.get("/partner/members?search=b&sort=name"), &p.admin);
    settle().await;

    let first = fetch(&app.service, dashboard()).await;
    let first_members = fetch(&app.service, members()).await;
    assert_eq!(first_members.0, 200, "{}", first_members.2);
    assert_eq!(first.0, 200, "{}", first.2);
    let first_analytics = fetch(&app.service, analytics()).await;
    let first_billing = fetch(&app.service, billing()).await;
    let d: Value = serde_json::from_str(&first.2).unwrap();
    assert_eq!(d["data"]["totalMembers"], 1);
    assert_eq!(d["data"]["totalClassesWatched"], 0);

    // The data changes behind the API's back: a member in Postgres, views in ClickHouse.
    let bob = insert_member(&app, p.t.client_id, "Bob").await;
    insert_views(&app, p.t.client_id, bob, 3).await;
    // Accepting events changes nothing until they land, so it keeps the cached answers too.
    app.post_events(
        &p,
        &member_token,
        json!([event(
            "yoga-1",
            Utc::now() - chrono::Duration::minutes(1),
            60
        )]),
    )
    .await
    .assert_status(202);
    // Served from the cache: the very same bytes and type, none of the changes.
    for _ in 0..3 {
        assert_eq!(fetch(&app.service, dashboard()).await, first);
        assert_eq!(fetch(&app.service, analytics()).await, first_analytics);
        assert_eq!(fetch(&app.service, billing()).await, first_billing);
        assert_eq!(fetch(&app.service, members()).await, first_members);
    }
    let metrics = app.send(app.get("/metrics")).await.text;
    for route in ["dashboard", "analytics", "billing", "members"] {
        assert!(
            metrics.contains(&format!(
                "portal_read_cache_hits_total{{route=\"{route}\"}}"
            )),
            "{route}"
        );
        assert!(
            metrics.contains(&format!(
                "portal_read_cache_misses_total{{route=\"{route}\"}}"
            )),
            "{route}"
        );
    }

    // Another client's announcement changes nothing for this one.
    publish(&app, &ClientId::from(Uuid::new_v4()).to_string()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fetch(&app.service, dashboard()).await, first);

    // The client's own announcement (what the worker publishes after a landing): fresh answers.
    publish(&app, &p.t.client_id.to_string()).await;
    let within = Duration::from_secs(2);
    until_shows(&app.service, dashboard, "/totalMembers", json!(2), within).await;
    let d = data(&app.service, dashboard()).await;
    assert_eq!(
        d["totalClassesWatched"], 0,
        "the summaries were not touched"
    );
    until_shows(
        &app.service,
        analytics,
        "/totals/classesWatched",
        json!(3),
        within,
    )
    .await;
    until_shows(
        &app.service,
        billing,
        "/activeMemberCount",
        json!(1),
        within,
    )
    .await;
    until_shows(
        &app.service,
        members,
        "/members/0/name",
        json!("Bob"),
        within,
    )
    .await;
    // And a fresh answer is what a cached one then repeats.
    let fresh = fetch(&app.service, dashboard()).await;
    assert_eq!(fetch(&app.service, dashboard()).await, fresh);

    // "*" (a catalogue import) drops every client's answers.
    insert_member(&app, p.t.client_id, "Cy").await;
    assert_eq!(fetch(&app.service, dashboard()).await, fresh);
    publish(&app, announce::ALL_CLIENTS).await;
    until_shows(&app.service, dashboard, "/totalMembers", json!(3), within).await;
}

#[tokio::test]
async fn landed_events_refresh_every_instance_at_once() {
    let app = with_read_cache(LONG_TTL).await;
    app.catalogue().await;
    let second = instance(&app).await;
    let services = [&*app.service, &*second.service];
    listening(&app, 2).await;
    let p = app.partner().await;
    let (_, token) = app.member(&p, "ann@example.com", "Ann").await;
    let dashboard = || bearer(app.get("/partner/dashboard"), &p.viewer);
    let analytics = || bearer(app.get("/partner/analytics?period=week"), &p.viewer);
    let billing = || {
        bearer(
            app.get(&format!("/partner/billing?{}", this_month())),
            &p.viewer,
        )
    };
    let members = || bearer(app.get("/partner/members"), &p.viewer);
    // Both instances have the empty answers cached.
    for service in services {
        for _ in 0..2 {
            assert_eq!(
                data(service, members()).await["members"][0]["classesWatched"],
                0
            );
            assert_eq!(data(service, dashboard()).await["totalClassesWatched"], 0);
            assert_eq!(
                data(service, analytics()).await["totals"]["classesWatched"],
                0
            );
            assert_eq!(data(service, billing()).await["activeMemberCount"], 0);
        }
    }

    let worker = app.worker().await;
    let now = views_at();
    app.post_events(
        &p,
        &token,
        json!([
            event("yoga-1", now, 600),
            event("hiit-1", now + chrono::Duration::minutes(1), 300),
        ]),
    )
    .await
    .assert_status(202);
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 2, 20).await, 2);
    // The landing is announced: both instances answer from the new data within a second, long
    // before their cached answers would expire.
    let within = Duration::from_secs(1);
    for service in services {
        until_shows(service, dashboard, "/totalClassesWatched", json!(2), within).await;
        until_shows(
            service,
            analytics,
            "/totals/classesWatched",
            json!(2),
            within,
        )
        .await;
        until_shows(service, billing, "/activeMemberCount", json!(1), within).await;
        until_shows(
            service,
            members,
            "/members/0/classesWatched",
            json!(2),
            within,
        )
        .await;
        let d = data(service, dashboard()).await;
        assert_eq!(d["totalWatchTimeMinutes"], 15);
        assert_eq!(d["activeMembers"], 1);
    }
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_api_write_shows_at_once_here_and_soon_on_every_other_instance() {
    let app = with_read_cache(LONG_TTL).await;
    let second = instance(&app).await;
    listening(&app, 2).await;
    let p = app.partner().await;
    let dashboard = || bearer(app.get("/partner/dashboard"), &p.viewer);
    let funnel = || bearer(app.get("/partner/funnel?period=week"), &p.viewer);
    let members = || bearer(app.get("/partner/members"), &p.viewer);
    for service in [&*app.service, &*second.service] {
        assert_eq!(data(service, dashboard()).await["totalMembers"], 0);
        assert_eq!(data(service, members()).await["pagination"]["total"], 0);
        let f = data(service, funnel()).await;
        assert_eq!(
            (&f["vouchersIssued"], &f["registered"]),
            (&json!(0), &json!(0))
        );
    }

    // Vouchers generated on the first instance: its next read shows them, without waiting.
    let codes = app.vouchers(&p, 3, None).await;
    assert_eq!(data(&app.service, funnel()).await["vouchersIssued"], 3);
    let within = Duration::from_secs(1);
    until_shows(&second.service, funnel, "/vouchersIssued", json!(3), within).await;

    // A member registers through the second instance (the app's API key, no staff token).
    let (status, _, text) = fetch(
        &second.service,
        key(app.post("/auth/register"), &p.t.api_key).json(&json!({
            "voucherCode": codes[0]["code"], "email": "ann@example.com",
            "password": PASSWORD, "name": "Ann",
        })),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(data(&second.service, dashboard()).await["totalMembers"], 1);
    assert_eq!(data(&second.service, funnel()).await["registered"], 1);
    until_shows(&app.service, dashboard, "/totalMembers", json!(1), within).await;
    until_shows(&app.service, funnel, "/registered", json!(1), within).await;
    assert_eq!(
        data(&second.service, members()).await["members"][0]["name"],
        "Ann"
    );
    until_shows(&app.service, members, "/pagination/total", json!(1), within).await;

    // A refused write (the code is spent) changes nothing and announces nothing: a direct change
    // stays unseen.
    settle().await;
    for service in [&*app.service, &*second.service] {
        assert_eq!(data(service, dashboard()).await["totalMembers"], 1);
    }
    insert_member(&app, p.t.client_id, "Bob").await;
    let (status, _, _) = fetch(
        &app.service,
        key(app.post("/auth/register"), &p.t.api_key).json(&json!({
            "voucherCode": codes[0]["code"], "email": "bob@example.com",
            "password": PASSWORD, "name": "Bob",
        })),
    )
    .await;
    assert_eq!(status, 409);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for service in [&*app.service, &*second.service] {
        assert_eq!(data(service, dashboard()).await["totalMembers"], 1);
    }
}

#[tokio::test]
async fn without_an_announcement_an_answer_lives_for_the_ttl_and_ttl_zero_caches_nothing() {
    let ttl = Duration::from_secs(2);
    let app = with_read_cache(&ttl.as_secs().to_string()).await;
    let p = app.partner().await;
    let dashboard = || bearer(app.get("/partner/dashboard"), &p.admin);
    let cached_at = Instant::now();
    assert_eq!(data(&app.service, dashboard()).await["totalMembers"], 0);
    insert_member(&app, p.t.client_id, "Ann").await;
    let mut seen_cached = false;
    loop {
        let total = data(&app.service, dashboard()).await["totalMembers"].clone();
        let answered = cached_at.elapsed();
        if answered < ttl {
            // The entry was computed after `cached_at`, so it is still served.
            assert_eq!(total, 0, "changed before the TTL, after {answered:?}");
            seen_cached = true;
        } else if total == 1 {
            break;
        }
        assert!(
            answered < ttl + Duration::from_secs(3),
            "the cached answer outlived the TTL: {answered:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen_cached,
        "the machine was too slow to see the cached answer"
    );

    let off = with_read_cache("0").await;
    let p = off.partner().await;
    let dashboard = || bearer(off.get("/partner/dashboard"), &p.admin);
    assert_eq!(data(&off.service, dashboard()).await["totalMembers"], 0);
    insert_member(&off, p.t.client_id, "Ann").await;
    assert_eq!(data(&off.service, dashboard()).await["totalMembers"], 1);
}

#[tokio::test]
async fn a_cached_answer_of_one_client_never_answers_another() {
    let app = with_read_cache(LONG_TTL).await;
    app.catalogue().await;
    let a = app.partner().await;
    let b = app.partner().await;
    let ann = app.member_id(&a, "ann@example.com", "Ann").await;
    insert_views(&app, a.t.client_id, ann, 2).await;
    // Every client starts afresh, in the same state of the cache (one generation for all).
    settle().await;
    publish(&app, announce::ALL_CLIENTS).await;
    let month = this_month();
    let paths = [
        "/partner/dashboard".to_string(),
        "/partner/analytics?period=week".to_string(),
        "/partner/funnel?period=week".to_string(),
        format!("/partner/billing?{month}"),
        "/partner/members".to_string(),
    ];
    // A's answers, cached (read twice), then B's for the very same routes and parameters.
    let mut of_a = Vec::new();
    for path in &paths {
        let r = until_a_shows_its_views(&app, path, &a.admin).await;
        assert_eq!(
            fetch(&app.service, bearer(app.get(path), &a.admin)).await,
            r
        );
        of_a.push(r);
    }
    for (path, a_answer) in paths.iter().zip(&of_a) {
        let r = fetch(&app.service, bearer(app.get(path), &b.admin)).await;
        assert_eq!(r.0, 200, "{}", r.2);
        assert_ne!(r.2, a_answer.2, "{path}: B got A's answer");
        let d: Value = serde_json::from_str(&r.2).unwrap();
        let empty = match path.as_str() {
            "/partner/dashboard" => d["data"]["totalMembers"] == 0,
            "/partner/analytics?period=week" => d["data"]["totals"]["classesWatched"] == 0,
            "/partner/funnel?period=week" => d["data"]["registered"] == 0,
            "/partner/members" => d["data"]["pagination"]["total"] == 0,
            _ => d["data"]["activeMemberCount"] == 0,
        };
        assert!(empty, "{path}: {}", r.2);
        // And A still gets its own.
        assert_eq!(
            fetch(&app.service, bearer(app.get(path), &a.admin)).await,
            *a_answer
        );
    }
}

/// A's answer on `path` once it shows A's member and views (the announcement of the test may
/// still be on its way).
async fn until_a_shows_its_views(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let started = Instant::now();
    loop {
        let r = fetch(&app.service, bearer(app.get(path), token)).await;
        assert_eq!(r.0, 200, "{}", r.2);
        let d: Value = serde_json::from_str(&r.2).unwrap();
        let shows = d["data"]["totalMembers"] == 1
            || d["data"]["totals"]["classesWatched"] == 2
            || d["data"]["registered"] == 1
            || d["data"]["activeMemberCount"] == 1
            || d["data"]["pagination"]["total"] == 1;
        if shows {
            return r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path}: {}",
            r.2
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_catalogue_import_by_the_operator_renames_classes_in_cached_analytics_at_once() {
    let app = with_read_cache(LONG_TTL).await;
    app.catalogue().await;
    listening(&app, 1).await;
    let p = app.partner().await;
    let ann = app.member_id(&p, "ann@example.com", "Ann").await;
    insert_views(&app, p.t.client_id, ann, 1).await;
    publish(&app, &p.t.client_id.to_string()).await;
    let analytics = || bearer(app.get("/partner/analytics?period=week"), &p.viewer);
    let within = Duration::from_secs(2);
    until_shows(
        &app.service,
        analytics,
        "/popularClasses/0/title",
        json!("Morning Flow"),
        within,
    )
    .await;

    let csv = std::env::temp_dir().join(format!("classes-{}.csv", Uuid::new_v4().simple()));
    std::fs::write(
        &csv,
        "id,title,category,instructor,durationMinutes\nyoga-1,Sunrise Flow,Yoga,Ana,30\n",
    )
    .unwrap();
    let (code, out, err) =
        crate::staff::admin(&app, &["classes", "import", csv.to_str().unwrap()]).await;
    std::fs::remove_file(&csv).ok();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["imported"], 1);
    until_shows(
        &app.service,
        analytics,
        "/popularClasses/0/title",
        json!("Sunrise Flow"),
        within,
    )
    .await;
}
