//! Partner self-service: the onboarding funnel, the team (`/partner/staff`), the app's API keys
//! (`/partner/api-keys`) and the portal's refresh-token cookie.

use std::time::Duration;

use chrono::Utc;
use portal_shared::domain::ids::{ClientId, MemberId, StaffId};
use portal_shared::pg::{api_keys, staff as staff_repo};
use portal_tests::{
    bearer, berlin, key, month_start, watch, Partner, Resp, TestApp, LANDED, PASSWORD,
};
use salvo::test::{RequestBuilder, TestClient};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::staff::{assert_demoted, assert_locked_out, assert_serves, call, instance, until_all};

async fn set_time(app: &TestApp, sql: &'static str, id: Value, at: chrono::DateTime<Utc>) {
    let q = sqlx::query(sql).bind(at);
    let q = match id {
        Value::Number(n) => q.bind(n.as_i64().unwrap()),
        Value::String(s) => q.bind(Uuid::parse_str(&s).unwrap()),
        other => panic!("not an id: {other}"),
    };
    assert_eq!(q.execute(&app.db).await.unwrap().rows_affected(), 1);
}

const VOUCHER_AT: &str = "UPDATE vouchers SET created_at = $1 WHERE id = $2";
const REGISTERED_AT: &str = "UPDATE members SET registered_at = $1 WHERE id = $2";

#[tokio::test]
async fn funnel_counts_equal_the_hand_computed_ones() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let other = app.partner().await;
    let worker = app.worker().await;
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    // Month M = two months ago; the range is its 10th to 20th (Berlin days).
    let m = month_start(today, 2);
    let day = |n: u64| m.checked_add_days(chrono::Days::new(n - 1)).unwrap();
    let (start, end) = (day(10), day(20));

    // Vouchers: three created on days of the range (one at 23:30 on its last day), one at 00:30
    // the day after and one the day before. The members' own vouchers are created now.
    let v = app.vouchers(&p, 5, None).await;
    for (i, at) in [
        berlin(day(10), 0, 5),
        berlin(day(15), 12, 0),
        berlin(day(20), 23, 30),
        berlin(day(21), 0, 30),
        berlin(day(9), 23, 55),
    ]
    .into_iter()
    .enumerate()
    {
        set_time(&app, VOUCHER_AT, v[i]["id"].clone(), at).await;
    }
    // Another partner's voucher on a day of the range counts for them only.
    let ov = app.vouchers(&other, 1, None).await;
    set_time(&app, VOUCHER_AT, ov[0]["id"].clone(), berlin(day(12), 9, 0)).await;

    let mut ids = Vec::new();
    for (email, registered) in [
        ("ann@example.com", Some(berlin(day(10), 8, 0))),
        ("bob@example.com", Some(berlin(day(20), 23, 59))),
        ("cy@example.com", Some(berlin(day(5), 10, 0))),
        ("dee@example.com", None),
    ] {
        let (id, _) = app.member(&p, email, "Member").await;
        if let Some(at) = registered {
            set_time(&app, REGISTERED_AT, Value::String(id.clone()), at).await;
        }
        ids.push(id.parse::<MemberId>().unwrap());
    }
    let (ann, bob, cy, dee) = (ids[0], ids[1], ids[2], ids[3]);
    // Ann watches in the range; Bob only on the 3rd of M (billable for M, not active in the
    // range); Cy at 00:30 Berlin on the 10th (still the 9th in UTC: in the range); Dee in the
    // following month only (neither).
    app.push_batch(
        p.t.client_id,
        ann,
        vec![
            watch("yoga-1", berlin(day(12), 18, 0), 600),
            watch("hiit-1", berlin(day(13), 18, 0), 600),
        ],
    )
    .await;
    app.push_batch(
        p.t.client_id,
        bob,
        vec![watch("yoga-2", berlin(day(3), 7, 0), 300)],
    )
    .await;
    app.push_batch(
        p.t.client_id,
        cy,
        vec![watch("pilates-1", berlin(day(10), 0, 30), 900)],
    )
    .await;
    app.push_batch(
        p.t.client_id,
        dee,
        vec![watch("yoga-1", berlin(month_start(today, 1), 9, 0), 300)],
    )
    .await;
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 5, 20).await, 5);

    let q = format!("/partner/funnel?startDate={start}&endDate={end}");
    let r = app.send(bearer(app.get(&q), &p.viewer)).await;
    r.assert_status(200);
    let d = &r.body["data"];
    assert_eq!(d["range"]["startDate"], start.to_string(), "{}", r.text);
    assert_eq!(d["range"]["endDate"], end.to_string());
    assert_eq!(d["vouchersIssued"], 3, "{}", r.text);
    assert_eq!(d["registered"], 2, "{}", r.text);
    assert_eq!(d["active"], 2, "Ann and Cy: {}", r.text);
    assert_eq!(d["billable"], 3, "Ann, Bob and Cy: {}", r.text);

    // The same range's analytics and the month's billing agree.
    let a = app
        .send(bearer(
            app.get(&format!(
                "/partner/analytics?startDate={start}&endDate={end}"
            )),
            &p.viewer,
        ))
        .await;
    assert_eq!(a.body["data"]["totals"]["activeMembers"], d["active"]);
    let b = app.billing(&p.viewer, m).await;
    assert_eq!(b.body["data"]["activeMemberCount"], d["billable"]);

    // The other partner sees its own voucher and nothing of A's.
    let r = app.send(bearer(app.get(&q), &other.admin)).await;
    assert_eq!(
        r.body["data"],
        json!({"range": {"startDate": start.to_string(), "endDate": end.to_string()},
               "vouchersIssued": 1, "registered": 0, "active": 0, "billable": 0})
    );

    // Periods: the last week holds the members' own vouchers (created now) and Dee's registration.
    let r = app
        .send(bearer(app.get("/partner/funnel?period=week"), &p.admin))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["vouchersIssued"], 4, "{}", r.text);
    assert_eq!(r.body["data"]["registered"], 1, "{}", r.text);
    assert_eq!(r.body["data"]["active"], 0, "{}", r.text);

    // Bad ranges are refused as analytics refuses them.
    for (q, field) in [
        ("/partner/funnel?period=year", "period"),
        ("/partner/funnel?startDate=2026-01-01", "endDate"),
        (
            "/partner/funnel?startDate=2026-02-01&endDate=2026-01-01",
            "startDate",
        ),
        (
            "/partner/funnel?startDate=2025-01-01&endDate=2026-12-31",
            "endDate",
        ),
        ("/partner/funnel?period=week&endDate=2026-01-01", "period"),
    ] {
        let r = app.send(bearer(app.get(q), &p.admin)).await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"][0]["field"], field, "{q}");
    }
    app.send(app.get("/partner/funnel"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    worker.stop().await.unwrap();
}

async fn staff_id(app: &TestApp, email: &str) -> StaffId {
    portal_shared::pg::unscoped::staff_for_login(&app.db, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

fn new_staff(email: &str, role: &str) -> Value {
    json!({"email": email, "password": PASSWORD, "name": "New Coach", "role": role})
}

/// The client's audit entries of `prefix.*`: (action, actor type, actor id, details).
async fn audited(
    app: &TestApp,
    client: ClientId,
    like: &str,
) -> Vec<(String, String, Option<StaffId>, Value)> {
    sqlx::query_as::<_, (String, String, Option<StaffId>, sqlx::types::Json<Value>)>(
        "SELECT action, actor_type, actor_id, details FROM audit_log
         WHERE client_id = $1 AND action LIKE $2 ORDER BY id",
    )
    .bind(client)
    .bind(like)
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .map(|(a, t, i, d)| (a, t, i, d.0))
    .collect()
}

#[tokio::test]
async fn admins_manage_the_team_and_viewers_cannot() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let other = app.partner().await;
    let admin_id = staff_id(&app, &p.t.admin_email).await;

    let r = app.send(bearer(app.get("/partner/staff"), &p.admin)).await;
    r.assert_status(200);
    let list = r.body["data"]["staff"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", r.text);
    assert_eq!(list[0]["email"], p.t.admin_email);
    assert_eq!(list[0]["role"], "admin");
    assert_eq!(list[0]["active"], true);
    assert!(list[0]["lastLoginAt"].is_string(), "{}", r.text);
    assert!(list[0]["createdAt"].is_string());
    assert_eq!(list[1]["role"], "viewer");
    assert!(!r.text.contains("argon2"), "no password hash: {}", r.text);

    // Create: the new member can log in with the role given.
    let email = format!("coach@{}.example", p.t.slug);
    let r = app
        .send(
            bearer(app.post("/partner/staff"), &p.admin).json(&new_staff(
                &format!("  Coach@{}.EXAMPLE ", p.t.slug),
                "viewer",
            )),
        )
        .await;
    r.assert_status(201);
    let coach = r.body["data"].clone();
    assert_eq!(coach["email"], email);
    assert_eq!(coach["name"], "New Coach");
    assert_eq!(coach["role"], "viewer");
    assert_eq!(coach["active"], true);
    assert!(coach["lastLoginAt"].is_null());
    app.login(&email, PASSWORD).await.assert_status(200);
    let r = app.send(bearer(app.get("/partner/staff"), &p.admin)).await;
    assert_eq!(r.body["data"]["staff"].as_array().unwrap().len(), 3);

    // Refused creations change nothing.
    for (body, status, code) in [
        (new_staff(&email, "viewer"), 409, "EMAIL_TAKEN"),
        // Emails are unique across partners (logins are by email alone).
        (new_staff(&other.t.admin_email, "admin"), 409, "EMAIL_TAKEN"),
        (
            json!({"email": "x@y.example", "password": "short", "name": "X", "role": "viewer"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": "x@y.example", "password": "p".repeat(257), "name": "X", "role": "viewer"}),
            400,
            "VALIDATION_ERROR",
        ),
        (new_staff("x@y.example", "owner"), 400, "VALIDATION_ERROR"),
        (new_staff("not-an-email", "viewer"), 400, "VALIDATION_ERROR"),
        (
            json!({"email": "x@y.example", "password": PASSWORD, "name": "   ", "role": "viewer"}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": "x@y.example", "password": PASSWORD, "name": "X", "role": "viewer", "clientId": other.t.client_id}),
            400,
            "VALIDATION_ERROR",
        ),
        (
            json!({"email": "x@y.example", "password": PASSWORD, "role": "viewer"}),
            400,
            "VALIDATION_ERROR",
        ),
    ] {
        let r = app
            .send(bearer(app.post("/partner/staff"), &p.admin).json(&body))
            .await;
        r.assert_error(status, code);
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM staff WHERE client_id = $1",
            p.t.client_id
        )
        .await,
        3
    );

    // Patch: name and role; values equal to the current ones change nothing.
    let coach_path = format!("/partner/staff/{}", coach["id"].as_str().unwrap());
    let r = app
        .send(
            bearer(app.patch(&coach_path), &p.admin)
                .json(&json!({"name": " Head Coach ", "role": "admin"})),
        )
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["name"], "Head Coach");
    assert_eq!(r.body["data"]["role"], "admin");
    let r = app
        .send(
            bearer(app.patch(&coach_path), &p.admin)
                .json(&json!({"role": "admin", "active": true})),
        )
        .await;
    r.assert_status(200);
    for (body, code) in [
        (json!({}), "VALIDATION_ERROR"),
        (json!({"role": "owner"}), "VALIDATION_ERROR"),
        (json!({"active": "no"}), "VALIDATION_ERROR"),
        (json!({"name": ""}), "VALIDATION_ERROR"),
        (json!({"role": null}), "VALIDATION_ERROR"),
        (json!({"email": "a@b.example"}), "VALIDATION_ERROR"),
        (json!(["role"]), "VALIDATION_ERROR"),
    ] {
        let r = app
            .send(bearer(app.patch(&coach_path), &p.admin).json(&body))
            .await;
        r.assert_error(400, code);
    }
    // Another partner's staff id, an unknown one and a malformed one are all 404.
    let foreign = staff_id(&app, &other.t.viewer_email).await;
    for path in [
        format!("/partner/staff/{foreign}"),
        format!("/partner/staff/{}", Uuid::now_v7()),
        "/partner/staff/not-an-id".to_string(),
    ] {
        let r = app
            .send(bearer(app.patch(&path), &p.admin).json(&json!({"active": false})))
            .await;
        r.assert_error(404, "NOT_FOUND");
    }
    let f = staff_repo::get(&app.db, other.t.client_id, foreign)
        .await
        .unwrap();
    assert!(f.active);
    let r = app
        .send(bearer(app.get("/partner/staff"), &other.admin))
        .await;
    assert!(!r.text.contains(&p.t.admin_email), "{}", r.text);
    assert_eq!(r.body["data"]["staff"].as_array().unwrap().len(), 2);

    // Viewers: 403 on the list and on every write, nothing changed.
    for req in [
        bearer(app.get("/partner/staff"), &p.viewer),
        bearer(app.post("/partner/staff"), &p.viewer).json(&new_staff("v@y.example", "admin")),
        bearer(app.patch(&coach_path), &p.viewer).json(&json!({"active": false})),
        bearer(app.patch(&format!("/partner/staff/{admin_id}")), &p.viewer)
            .json(&json!({"role": "viewer"})),
    ] {
        app.send(req).await.assert_error(403, "FORBIDDEN");
    }
    app.send(app.get("/partner/staff"))
        .await
        .assert_error(401, "UNAUTHORIZED");

    // Every write is audited with the acting admin.
    let log = audited(&app, p.t.client_id, "staff.%").await;
    let actions: Vec<&str> = log.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        ["staff.create", "staff.rename", "staff.set_role"],
        "{log:?}"
    );
    for (_, actor_type, actor_id, _) in &log {
        assert_eq!(actor_type, "staff");
        assert_eq!(*actor_id, Some(admin_id));
    }
    assert_eq!(log[0].3["email"], email);
    assert_eq!(log[0].3["role"], "viewer");
    assert_eq!(log[1].3["to"], "Head Coach");
    assert_eq!(log[2].3["from"], "viewer");
    assert_eq!(log[2].3["to"], "admin");
    assert!(audited(&app, other.t.client_id, "staff.%").await.is_empty());
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_deactivated() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let admin_id = staff_id(&app, &p.t.admin_email).await;
    let me = format!("/partner/staff/{admin_id}");
    for body in [
        json!({"role": "viewer"}),
        json!({"active": false}),
        json!({"name": "Renamed", "active": false}),
        json!({"role": "viewer", "active": true}),
    ] {
        let r = app.send(bearer(app.patch(&me), &p.admin).json(&body)).await;
        r.assert_error(409, "LAST_ADMIN");
    }
    let s = staff_repo::get(&app.db, p.t.client_id, admin_id)
        .await
        .unwrap();
    assert!(s.active);
    assert_eq!(s.role, portal_shared::domain::auth::Role::Admin);
    assert_eq!(s.name, "Test Staff", "a refused change changes nothing");
    assert!(audited(&app, p.t.client_id, "staff.%").await.is_empty());
    app.send(bearer(app.get("/partner/members"), &p.admin))
        .await
        .assert_status(200);

    // With a second admin, the first may step down; then the second is the last one.
    let second = format!("second@{}.example", p.t.slug);
    let r = app
        .send(bearer(app.post("/partner/staff"), &p.admin).json(&new_staff(&second, "admin")))
        .await;
    r.assert_status(201);
    let second_id = r.body["data"]["id"].as_str().unwrap().to_string();
    let (second_token, _) = app.tokens(&second).await;
    let r = app
        .send(bearer(app.patch(&me), &p.admin).json(&json!({"active": false})))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["active"], false);
    app.send(bearer(app.get("/partner/members"), &p.admin))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let second_steps_down = || {
        bearer(
            app.patch(&format!("/partner/staff/{second_id}")),
            &second_token,
        )
        .json(&json!({"role": "viewer"}))
    };
    app.send(second_steps_down())
        .await
        .assert_error(409, "LAST_ADMIN");
    // Bringing the first back is allowed, and then the second may step down.
    let r = app
        .send(bearer(app.patch(&me), &second_token).json(&json!({"active": true})))
        .await;
    r.assert_status(200);
    app.send(second_steps_down()).await.assert_status(200);
    let actions: Vec<String> = audited(&app, p.t.client_id, "staff.%")
        .await
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        actions,
        [
            "staff.create",
            "staff.deactivate",
            "staff.activate",
            "staff.set_role"
        ]
    );
}

#[tokio::test]
async fn deactivation_and_demotion_by_an_admin_apply_at_once_on_every_instance() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let second = instance(&app).await;
    app.wait_listeners(&staff_repo::change_channel(&app.namespace), 2)
        .await;
    let services = [&*app.service, &*second.service];

    // A second admin with a live session, cached as an active admin by both instances.
    let email = format!("deputy@{}.example", p.t.slug);
    let r = app
        .send(bearer(app.post("/partner/staff"), &p.admin).json(&new_staff(&email, "admin")))
        .await;
    r.assert_status(201);
    let path = format!("/partner/staff/{}", r.body["data"]["id"].as_str().unwrap());
    let (access, refresh) = app.tokens(&email).await;
    let read = || bearer(app.get("/partner/members"), &access);
    let write =
        || bearer(app.put("/partner/strings"), &access).json(&json!({"st_note": "<p>x</p>"}));
    assert_serves(&services, read, write).await;

    let r = app
        .send(bearer(app.patch(&path), &p.admin).json(&json!({"role": "viewer"})))
        .await;
    r.assert_status(200);
    assert_demoted(&services, read, write).await;

    let r = app
        .send(bearer(app.patch(&path), &p.admin).json(&json!({"active": false})))
        .await;
    r.assert_status(200);
    // The session is over and the login refused.
    assert_locked_out(&app, &services, read, &refresh, &email).await;
    let log = audited(&app, p.t.client_id, "staff.deactivate").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].3["sessionsRevoked"], 1);
    // The admin who acted is untouched.
    for service in services {
        assert_eq!(
            call(service, bearer(app.get("/partner/members"), &p.admin))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_at_once_on_every_instance() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let other = app.partner().await;
    let second = instance(&app).await;
    app.wait_listeners(&api_keys::revocation_channel(&app.namespace), 2)
        .await;
    let services = [&*app.service, &*second.service];

    let r = app
        .send(bearer(app.post("/partner/api-keys"), &p.admin).json(&json!({"name": " iOS app "})))
        .await;
    r.assert_status(201);
    let created = r.body["data"].clone();
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ppk_"), "{secret}");
    assert_eq!(created["name"], "iOS app");
    assert_eq!(created["prefix"], secret[..12]);
    let id = created["id"].as_str().unwrap().to_string();

    let r = app
        .send(bearer(app.get("/partner/api-keys"), &p.admin))
        .await;
    r.assert_status(200);
    let keys = r.body["data"]["apiKeys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{}", r.text);
    assert_eq!(keys[0]["id"], id.as_str(), "newest first");
    assert_eq!(keys[0]["revoked"], false);
    assert!(keys[0]["revokedAt"].is_null());
    assert_eq!(keys[1]["id"], p.t.api_key_id.to_string());
    assert!(!r.text.contains(&secret), "the key is shown once");
    assert!(!r.text.contains(&p.t.api_key));
    assert!(keys.iter().all(|k| k.get("key").is_none()));

    // The new key works on both instances (and is cached there).
    let use_key = || key(app.get("/app/strings"), &secret);
    for service in services {
        assert_eq!(call(service, use_key()).await.0, 200);
    }
    let r = app
        .send(bearer(app.get("/partner/api-keys"), &p.admin))
        .await;
    assert!(r.body["data"]["apiKeys"][0]["lastUsedAt"].is_string());

    // Viewers may neither list, create nor revoke.
    for req in [
        bearer(app.get("/partner/api-keys"), &p.viewer),
        bearer(app.post("/partner/api-keys"), &p.viewer).json(&json!({"name": "x"})),
        bearer(app.delete(&format!("/partner/api-keys/{id}")), &p.viewer),
    ] {
        app.send(req).await.assert_error(403, "FORBIDDEN");
    }
    // Bad names.
    for body in [
        json!({"name": "  "}),
        json!({"name": "k".repeat(101)}),
        json!({}),
        json!({"name": "x", "clientId": other.t.client_id}),
    ] {
        app.send(bearer(app.post("/partner/api-keys"), &p.admin).json(&body))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // Another partner's key id, an unknown and a malformed one: 404, and their key still works.
    for path in [
        format!("/partner/api-keys/{}", other.t.api_key_id),
        format!("/partner/api-keys/{}", Uuid::now_v7()),
        "/partner/api-keys/nope".to_string(),
    ] {
        app.send(bearer(app.delete(&path), &p.admin))
            .await
            .assert_error(404, "NOT_FOUND");
    }
    app.send(key(app.get("/app/strings"), &other.t.api_key))
        .await
        .assert_status(200);

    // Revoked: refused at once by both instances.
    let revoke = || bearer(app.delete(&format!("/partner/api-keys/{id}")), &p.admin);
    let r = app.send(revoke()).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["revoked"], true);
    let revoked_at = r.body["data"]["revokedAt"].clone();
    assert!(revoked_at.is_string());
    let took = until_all(&services, use_key, 401).await;
    assert!(took < Duration::from_secs(3), "revocation took {took:?}");
    for service in services {
        assert_eq!(call(service, use_key()).await, (401, "UNAUTHORIZED".into()));
    }
    // Again: same answer, no second revocation.
    let r = app.send(revoke()).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["revokedAt"], revoked_at);
    // The partner's other key is untouched.
    app.send(key(app.get("/app/strings"), &p.t.api_key))
        .await
        .assert_status(200);

    let admin_id = staff_id(&app, &p.t.admin_email).await;
    let log = audited(&app, p.t.client_id, "api_keys.%").await;
    let actions: Vec<&str> = log.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(actions, ["api_keys.create", "api_keys.revoke"], "{log:?}");
    for (_, actor_type, actor_id, details) in &log {
        assert_eq!(actor_type, "staff");
        assert_eq!(*actor_id, Some(admin_id));
        assert_eq!(details["prefix"], secret[..12]);
        assert!(!details.to_string().contains(&secret));
    }
    assert!(audited(&app, other.t.client_id, "api_keys.%")
        .await
        .is_empty());
}

/// The `portal_refresh` cookie a response sets: (value, attributes lower-cased).
fn set_cookie(r: &Resp) -> (String, Vec<String>) {
    let raw = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", r.headers));
    let mut parts = raw.split(';').map(str::trim);
    let (name, value) = parts.next().unwrap().split_once('=').unwrap();
    assert_eq!(name, "portal_refresh", "{raw}");
    (
        value.to_string(),
        parts.map(|p| p.to_ascii_lowercase()).collect(),
    )
}

fn with_cookie(req: RequestBuilder, token: &str) -> RequestBuilder {
    req.add_header("cookie", format!("portal_refresh={token}"), true)
}

fn login_body(p: &Partner) -> Value {
    json!({"email": p.t.admin_email, "password": PASSWORD})
}

#[tokio::test]
async fn the_refresh_token_travels_as_a_strict_http_only_cookie() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;

    // Over https: Secure; the cookie carries the body's refresh token.
    let r = app
        .send(TestClient::post("https://portal.test/partner-auth/login").json(&login_body(&p)))
        .await;
    r.assert_status(200);
    let (first, attrs) = set_cookie(&r);
    assert_eq!(first, r.body["data"]["refreshToken"].as_str().unwrap());
    for want in [
        "httponly",
        "samesite=strict",
        "path=/partner-auth",
        "secure",
        "max-age=2592000",
    ] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing: {attrs:?}");
    }
    // Over plain http (and a forwarded https from an untrusted peer): not Secure.
    let r = app
        .send(
            app.post("/partner-auth/login")
                .add_header("x-forwarded-proto", "https", true)
                .json(&login_body(&p)),
        )
        .await;
    r.assert_status(200);
    let (_, attrs) = set_cookie(&r);
    assert!(!attrs.iter().any(|a| a == "secure"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a == "httponly"));

    // Refresh by cookie alone (`{}`): rotated in the body and in the cookie.
    let r = app
        .send(with_cookie(app.post("/partner-auth/refresh"), &first).json(&json!({})))
        .await;
    r.assert_status(200);
    let (second, attrs) = set_cookie(&r);
    assert_ne!(second, first);
    assert_eq!(second, r.body["data"]["refreshToken"].as_str().unwrap());
    assert!(attrs.iter().any(|a| a == "samesite=strict"));
    let access = r.body["data"]["accessToken"].as_str().unwrap().to_string();
    app.send(bearer(app.get("/partner-auth/me"), &access))
        .await
        .assert_status(200);
    // Nothing in the body and no cookie: 401.
    app.send(app.post("/partner-auth/refresh").json(&json!({})))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(
        app.post("/partner-auth/refresh")
            .json(&json!({"refreshToken": null})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.send(
        with_cookie(app.post("/partner-auth/refresh"), &second).json(&json!({"refreshToken": 7})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");

    // The old cookie again: reuse, the whole login is revoked and the cookie cleared.
    let r = app
        .send(with_cookie(app.post("/partner-auth/refresh"), &first).json(&json!({})))
        .await;
    r.assert_error(401, "UNAUTHORIZED");
    let (value, attrs) = set_cookie(&r);
    assert_eq!(value, "");
    assert!(attrs.iter().any(|a| a == "max-age=0"), "{attrs:?}");
    app.send(with_cookie(app.post("/partner-auth/refresh"), &second).json(&json!({})))
        .await
        .assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'auth.refresh_reuse_detected'",
            p.t.client_id
        )
        .await,
        1
    );

    // The body wins over the cookie.
    let (_, body_token) = app.tokens(&p.t.admin_email).await;
    let r = app
        .send(
            with_cookie(app.post("/partner-auth/refresh"), "prt_garbage")
                .json(&json!({"refreshToken": body_token})),
        )
        .await;
    r.assert_status(200);

    // Logout by cookie: the session ends and the cookie is cleared.
    let r = app
        .send(app.post("/partner-auth/login").json(&login_body(&p)))
        .await;
    let (live, _) = set_cookie(&r);
    let r = app
        .send(with_cookie(app.post("/partner-auth/logout"), &live).json(&json!({})))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["loggedOut"], true);
    let (value, attrs) = set_cookie(&r);
    assert_eq!(value, "");
    assert!(attrs.iter().any(|a| a == "max-age=0"), "{attrs:?}");
    assert!(attrs.iter().any(|a| a == "path=/partner-auth"), "{attrs:?}");
    app.send(with_cookie(app.post("/partner-auth/refresh"), &live).json(&json!({})))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // Logging out without any token has nothing to end.
    app.send(app.post("/partner-auth/logout").json(&json!({})))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn the_cookie_is_secure_behind_a_trusted_https_proxy() {
    let app = TestApp::spawn_with(|v| {
        v.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let p = app.partner().await;
    let base = app.serve_tcp().await;
    let http = reqwest::Client::new();
    let login = |proto: Option<&'static str>| {
        let mut req = http
            .post(format!("{base}/partner-auth/login"))
            .json(&login_body(&p));
        if let Some(proto) = proto {
            req = req.header("x-forwarded-proto", proto);
        }
        req.send()
    };
    for (proto, secure) in [(Some("https"), true), (Some("http"), false), (None, false)] {
        let r = login(proto).await.unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(cookie.starts_with("portal_refresh="), "{cookie}");
        assert!(cookie.contains("httponly"), "{cookie}");
        assert_eq!(
            cookie.split(';').any(|a| a.trim() == "secure"),
            secure,
            "{proto:?}: {cookie}"
        );
    }
}
