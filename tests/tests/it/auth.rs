//! Staff authentication: login, tokens, refresh rotation, logout, throttling, roles.

use base64::Engine;
use portal_shared::domain::auth::{Role, TokenType};
use portal_tests::{bearer, key, TestApp, PASSWORD};

#[tokio::test]
async fn login_returns_tokens_and_profile() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let r = app.login(&t.admin_email, PASSWORD).await;
    r.assert_status(200);
    let d = &r.body["data"];
    assert_eq!(r.body["success"], true);
    assert_eq!(d["expiresIn"], 900);
    assert_eq!(d["staff"]["email"], t.admin_email.as_str());
    assert_eq!(d["staff"]["role"], "admin");
    assert_eq!(d["staff"]["client"]["timezone"], "Europe/Berlin");
    assert_eq!(d["staff"]["client"]["branding"]["primaryColor"], "#0E7C86");
    assert!(r.header("x-ratelimit-limit").is_some());

    // The access token's claims: staff, client, role, type.
    let token = d["accessToken"].as_str().unwrap();
    let claims = app.state.jwt.verify(token, TokenType::Partner).unwrap();
    assert_eq!(claims.client, t.client_id);
    assert_eq!(claims.role, Some(Role::Admin));
    assert_eq!(claims.exp - claims.iat, 900);

    let me = app.send(bearer(app.get("/partner-auth/me"), token)).await;
    me.assert_status(200);
    assert_eq!(me.body["data"]["email"], t.admin_email.as_str());
    assert_eq!(me.body["data"]["client"]["slug"], t.slug.as_str());

    // Email is case-insensitive.
    app.login(&t.admin_email.to_uppercase(), PASSWORD)
        .await
        .assert_status(200);

    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'auth.login'",
    )
    .bind(t.client_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let wrong = app.login(&t.admin_email, "not the password").await;
    wrong.assert_error(401, "UNAUTHORIZED");
    let unknown = app.login("nobody@nowhere.example", "whatever-pass").await;
    unknown.assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        wrong.body["error"]["message"],
        unknown.body["error"]["message"]
    );
    // Malformed input is a 400, not a 401 and not a 500.
    app.login("not-an-email", "x")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let r = app
        .send(
            app.post("/partner-auth/login")
                .raw_json("{\"email\": \"a@b.example\""),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let r = app
        .send(
            app.post("/partner-auth/login")
                .raw_json("{\"email\": 5, \"password\": []}"),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn inactive_staff_cannot_log_in_or_use_tokens() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (access, _) = app.tokens(&t.admin_email).await;
    let row = portal_shared::pg::unscoped::staff_for_login(&app.db, &t.admin_email)
        .await
        .unwrap()
        .unwrap();
    portal_shared::pg::staff::set_active(&app.db, t.client_id, row.id, false)
        .await
        .unwrap();
    app.state.staff.invalidate_all();
    app.login(&t.admin_email, PASSWORD)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(bearer(app.get("/partner-auth/me"), &access))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn bad_tokens_are_rejected_with_401() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (good, _) = app.tokens(&t.admin_email).await;
    let staff_id = app.state.jwt.verify(&good, TokenType::Partner).unwrap().sub;
    let now = chrono::Utc::now().timestamp();

    let expired = app
        .state
        .jwt
        .issue_with_times(
            TokenType::Partner,
            staff_id,
            t.client_id,
            Some(Role::Admin),
            now - 3600,
            now - 60,
        )
        .unwrap();
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // Same claims, signed by someone else.
    let forged =
        portal_shared::domain::auth::JwtKeys::new("an-attacker-secret-that-is-long-enough")
            .issue(TokenType::Partner, staff_id, t.client_id, Some(Role::Admin))
            .unwrap()
            .0;
    // alg: none with valid-looking claims and no signature.
    let claims = app.state.jwt.verify(&good, TokenType::Partner).unwrap();
    let none = format!(
        "{}.{}.",
        b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
        b64(&serde_json::to_value(&claims).unwrap())
    );
    // A member token is the wrong type for partner routes.
    let member = app
        .state
        .jwt
        .issue(TokenType::Member, staff_id, t.client_id, None)
        .unwrap()
        .0;
    // Privilege escalation attempt: claims edited, old signature kept.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut edited = serde_json::to_value(&claims).unwrap();
    edited["client"] = serde_json::json!(uuid::Uuid::new_v4());
    parts[1] = b64(&edited);
    let edited = parts.join(".");

    for (name, token) in [
        ("expired", expired.as_str()),
        ("tampered", tampered.as_str()),
        ("forged", forged.as_str()),
        ("alg none", none.as_str()),
        ("member type", member.as_str()),
        ("edited claims", edited.as_str()),
        ("garbage", "abc.def.ghi"),
    ] {
        let r = app.send(bearer(app.get("/partner-auth/me"), token)).await;
        assert_eq!(r.status, 401, "{name}: {}", r.text);
        assert_eq!(r.error_code(), "UNAUTHORIZED", "{name}");
    }
    app.send(app.get("/partner-auth/me"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(bearer(app.get("/partner-auth/me"), &good))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (_, r1) = app.tokens(&t.admin_email).await;
    let refresh = |tok: String| {
        app.post("/partner-auth/refresh")
            .json(&serde_json::json!({"refreshToken": tok}))
    };
    let first = app.send(refresh(r1.clone())).await;
    first.assert_status(200);
    let r2 = first.body["data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = first.body["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(r1, r2);
    app.send(bearer(app.get("/partner-auth/me"), &a2))
        .await
        .assert_status(200);

    // A second login is a separate family and must survive the reuse below.
    let (_, other_family) = app.tokens(&t.admin_email).await;

    // r1 presented again: reuse. The whole family (r2 included) is revoked.
    app.send(refresh(r1.clone()))
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.send(refresh(r2.clone()))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let reuse_logged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'auth.refresh_reuse_detected'",
    )
    .bind(t.client_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(reuse_logged, 1);
    app.send(refresh(other_family)).await.assert_status(200);
    app.send(refresh("prt_not-a-real-token".into()))
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (_, r1) = app.tokens(&t.admin_email).await;
    let body = serde_json::json!({"refreshToken": r1});
    app.send(app.post("/partner-auth/logout").json(&body))
        .await
        .assert_status(200);
    app.send(app.post("/partner-auth/refresh").json(&body))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // Logging out twice is fine.
    app.send(app.post("/partner-auth/logout").json(&body))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn repeated_failures_for_one_email_are_throttled() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    for i in 0..5 {
        let r = app.login(&t.admin_email, "wrong password").await;
        r.assert_error(401, "UNAUTHORIZED");
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((4 - i).to_string().as_str())
        );
    }
    // Even the right password is refused while the window is open.
    let r = app.login(&t.admin_email, PASSWORD).await;
    r.assert_error(429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // Another account is not affected by this email's window.
    app.login(&t.viewer_email, PASSWORD)
        .await
        .assert_status(200);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    // 20 failures spread over many emails (each under its own limit) from one address.
    for i in 0..20 {
        app.login(&format!("probe{i}@example.com"), "guess-guess")
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let r = app.login(&t.admin_email, PASSWORD).await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn viewer_cannot_write_but_can_read() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (viewer, _) = app.tokens(&t.viewer_email).await;
    let (admin, _) = app.tokens(&t.admin_email).await;
    let body = serde_json::json!({"st_aboutus": "<p>Hello</p>"});
    let r = app
        .send(bearer(app.put("/partner/strings"), &viewer).json(&body))
        .await;
    r.assert_error(403, "FORBIDDEN");
    let r = app.send(bearer(app.get("/partner/strings"), &viewer)).await;
    r.assert_status(200);
    assert!(
        r.body["data"].get("st_aboutus").is_none(),
        "viewer write changed nothing"
    );
    app.send(bearer(app.put("/partner/strings"), &admin).json(&body))
        .await
        .assert_status(200);
    let r = app
        .send(key(
            bearer(app.get("/partner/vouchers/stats"), &viewer),
            &t.api_key,
        ))
        .await;
    r.assert_status(200);
}
