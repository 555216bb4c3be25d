//! App-facing API keys: cache, revocation, and the voucher routes' JWT + key pairing.

use std::time::Duration;

use portal_shared::repo::api_keys;
use portal_tests::{bearer, key, TestApp};

#[tokio::test]
async fn a_known_key_is_served_from_the_cache() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let before = app.state.api_keys.db_lookups();
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    assert_eq!(app.state.api_keys.db_lookups(), before + 1);
    for _ in 0..10 {
        app.send(key(app.get("/classes"), &t.api_key))
            .await
            .assert_status(200);
    }
    assert_eq!(
        app.state.api_keys.db_lookups(),
        before + 1,
        "repeat requests with a known key must not query Postgres"
    );
    let last_used: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(t.api_key_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(last_used.is_some());
}

#[tokio::test]
async fn missing_unknown_and_malformed_keys_are_401() {
    let app = TestApp::spawn().await;
    app.send(app.get("/classes"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(key(app.get("/classes"), "ppk_doesnotexist"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(key(app.get("/classes"), &"x".repeat(5000)))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(key(app.get("/app/strings"), "ppk_doesnotexist"))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_every_instance() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    // Wait until the revocation listener has subscribed.
    let channel = api_keys::revocation_channel(&app.namespace);
    let mut conn = app.state.redis.clone();
    for _ in 0..100 {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async::<Vec<(String, i64)>>(&mut conn)
            .await
            .unwrap()
            .remove(0);
        if n > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What `portal-admin api-key revoke` does: revoke in Postgres, announce on Redis.
    let (_, hash) = api_keys::revoke(&app.db, t.api_key_id).await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(hex::encode(hash))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = app.send(key(app.get("/classes"), &t.api_key)).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 401, "revoked key still accepted after 2.5 s");
    // Revoking again is harmless.
    api_keys::revoke(&app.db, t.api_key_id).await.unwrap();
}

#[tokio::test]
async fn revocation_is_honoured_after_the_cache_ttl_without_an_announcement() {
    let app = TestApp::spawn_with(|v| {
        v.insert("API_KEY_CACHE_TTL_SECS".into(), "1".into());
    })
    .await;
    let t = app.tenant().await;
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    api_keys::revoke(&app.db, t.api_key_id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn voucher_routes_need_a_key_of_the_staff_members_own_client() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    let b = app.tenant().await;
    let (token_b, _) = app.tokens(&b.admin_email).await;
    let (token_a, _) = app.tokens(&a.admin_email).await;
    // Key of client A with the JWT of client B.
    app.send(key(
        bearer(app.get("/partner/vouchers/stats"), &token_b),
        &a.api_key,
    ))
    .await
    .assert_error(403, "FORBIDDEN");
    // A key alone never reaches voucher routes.
    app.send(key(app.get("/partner/vouchers/stats"), &a.api_key))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // A JWT alone neither.
    app.send(bearer(app.get("/partner/vouchers/stats"), &token_a))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let r = app
        .send(key(
            bearer(app.get("/partner/vouchers/stats"), &token_a),
            &a.api_key,
        ))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["total"], 0);
    assert_eq!(r.body["data"]["redemptionRate"], 0.0);
}

#[tokio::test]
async fn app_strings_are_scoped_to_the_keys_client() {
    let app = TestApp::spawn().await;
    let a = app.tenant().await;
    let b = app.tenant().await;
    let (token_a, _) = app.tokens(&a.admin_email).await;
    app.send(
        bearer(app.put("/partner/strings"), &token_a)
            .json(&serde_json::json!({"st_aboutus": "<h1>A</h1><script>x()</script>"})),
    )
    .await
    .assert_status(200);
    let ra = app.send(key(app.get("/app/strings"), &a.api_key)).await;
    ra.assert_status(200);
    assert_eq!(ra.body["data"][0]["st_aboutus"], "<h1>A</h1>");
    let rb = app.send(key(app.get("/app/strings"), &b.api_key)).await;
    rb.assert_status(200);
    assert_eq!(rb.body["data"], serde_json::json!([{}]));
}
