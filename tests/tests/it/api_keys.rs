//! App-facing API keys: cache, revocation, and the voucher routes' JWT + key pairing.

use std::time::Duration;

use futures::StreamExt;
use portal_shared::pg::api_keys;
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

/// Counts every INSERT, UPDATE or DELETE statement on `api_keys`, even one that matches no row.
async fn count_key_table_writes(app: &TestApp) {
    for sql in [
        "CREATE TABLE api_key_writes (at timestamptz NOT NULL DEFAULT now())",
        "CREATE FUNCTION count_api_key_writes() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN INSERT INTO api_key_writes DEFAULT VALUES; RETURN NULL; END $$",
        "CREATE TRIGGER api_key_writes AFTER INSERT OR UPDATE OR DELETE ON api_keys
         FOR EACH STATEMENT EXECUTE FUNCTION count_api_key_writes()",
    ] {
        sqlx::query(sql).execute(&app.db).await.unwrap();
    }
}

async fn key_table_writes(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM api_key_writes")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn unknown_keys_write_nothing_and_leave_known_keys_cached() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    count_key_table_writes(&app).await;
    let cache = &app.state.api_keys;
    let before = cache.db_lookups();
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    assert_eq!(cache.db_lookups(), before + 1);
    assert_eq!(
        key_table_writes(&app).await,
        1,
        "last_used_at of the found key"
    );
    assert!(cache.is_cached(&t.api_key));

    let unknown: Vec<String> = (0..2_000)
        .map(|_| {
            portal_shared::domain::auth::random_secret(portal_shared::domain::auth::API_KEY_PREFIX)
        })
        .collect();
    let app_ref = &app;
    let statuses: Vec<u16> = futures::stream::iter(&unknown)
        .map(|k| async move { app_ref.send(key(app_ref.get("/classes"), k)).await.status })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(cache.db_lookups(), before + 1 + 2_000);
    assert_eq!(
        key_table_writes(&app).await,
        1,
        "an unknown key must not cost a write"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    let (known, negative) = cache.entry_counts().await;
    assert_eq!(known, 1, "unknown keys never enter the known-key cache");
    assert!(
        negative > 0 && negative <= api_keys::UNKNOWN_KEYS_CAPACITY,
        "{negative}"
    );

    // The known key is still answered from the cache, and a repeated unknown key from the
    // negative cache: neither asks Postgres.
    assert!(cache.is_cached(&t.api_key));
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    app.send(key(app.get("/classes"), &unknown[1_999]))
        .await
        .assert_error(401, "UNAUTHORIZED");
    assert_eq!(cache.db_lookups(), before + 1 + 2_000);
}

#[tokio::test]
async fn a_full_negative_cache_cannot_evict_a_known_key() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    // Room for one known key and sixteen unknown ones.
    let cache = api_keys::ApiKeyCache::with_capacity(Duration::from_secs(60), 1, 16);
    cache.authenticate(&app.db, &t.api_key).await.unwrap();
    for _ in 0..500 {
        let k =
            portal_shared::domain::auth::random_secret(portal_shared::domain::auth::API_KEY_PREFIX);
        let e = cache.authenticate(&app.db, &k).await.unwrap_err();
        assert_eq!(e.status(), 401);
    }
    let (known, negative) = cache.entry_counts().await;
    assert_eq!(known, 1);
    assert!(negative <= 16, "{negative}");
    assert_eq!(cache.db_lookups(), 501);
    let p = cache.authenticate(&app.db, &t.api_key).await.unwrap();
    assert_eq!(p.client_id, t.client_id);
    assert_eq!(cache.db_lookups(), 501, "the known key was evicted");
    // Revocation still drops it at once.
    let (_, hash) = portal_shared::pg::unscoped::revoke_api_key(&app.db, t.api_key_id)
        .await
        .unwrap();
    cache.invalidate(&hash).await;
    assert_eq!(
        cache
            .authenticate(&app.db, &t.api_key)
            .await
            .unwrap_err()
            .status(),
        401
    );
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
    app.wait_listeners(&channel, 1).await;
    let mut conn = app.state.redis.clone();
    // What `portal-admin api-key revoke` does: revoke in Postgres, announce on Redis.
    let (_, hash) = portal_shared::pg::unscoped::revoke_api_key(&app.db, t.api_key_id)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(hex::encode(hash))
        .query_async(&mut conn)
        .await
        .unwrap();
    let status = app
        .send_until(401, 3, || key(app.get("/classes"), &t.api_key))
        .await;
    assert_eq!(status, 401, "revoked key still accepted after 3 s");
    // Revoking again is harmless.
    portal_shared::pg::unscoped::revoke_api_key(&app.db, t.api_key_id)
        .await
        .unwrap();
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
    portal_shared::pg::unscoped::revoke_api_key(&app.db, t.api_key_id)
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    // Without an announcement the cached key answers until its entry expires (1 s), then 401.
    let deadline = revoked + Duration::from_secs(10);
    loop {
        let r = app.send(key(app.get("/classes"), &t.api_key)).await;
        if r.status == 401 {
            r.assert_error(401, "UNAUTHORIZED");
            break;
        }
        r.assert_status(200);
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
