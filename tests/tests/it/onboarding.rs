//! The app's onboarding: voucher validation, registration (one winner per code), member login.

use portal_tests::{bearer, key, TestApp, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn validate_is_case_insensitive_and_hides_other_partners_codes() {
    let app = TestApp::spawn().await;
    let a = app.partner().await;
    let b = app.partner().await;
    let va = app.vouchers(&a, 1, Some("ALPHA")).await;
    let vb = app.vouchers(&b, 1, Some("BETA")).await;
    let check = |k: &str, code: &str| {
        key(app.post("/auth/voucher/validate"), k).json(&json!({ "code": code }))
    };
    let r = app
        .send(check(
            &a.t.api_key,
            &va[0]["code"].as_str().unwrap().to_lowercase(),
        ))
        .await;
    r.assert_status(200);
    assert_eq!(
        r.body["data"],
        json!({"valid": true, "status": "active", "expiresAt": null})
    );
    let foreign = app
        .send(check(&a.t.api_key, vb[0]["code"].as_str().unwrap()))
        .await;
    let missing = app.send(check(&a.t.api_key, "BETA-ZZZZZZZZ")).await;
    foreign.assert_status(200);
    assert_eq!(
        foreign.body, missing.body,
        "another partner's code must look like no code"
    );
    assert_eq!(foreign.body["data"]["valid"], false);
    app.send(check(&a.t.api_key, ""))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    app.send(key(app.post("/auth/voucher/validate"), &a.t.api_key).json(&json!({"code": 5})))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn validate_is_throttled_against_enumeration() {
    let app = TestApp::spawn().await;
    let a = app.partner().await;
    let mut last = None;
    for i in 0..12 {
        let r = app
            .send(
                key(app.post("/auth/voucher/validate"), &a.t.api_key)
                    .json(&json!({"code": format!("GUESS-{i:08}")})),
            )
            .await;
        last = Some(r);
        if last.as_ref().unwrap().status == 429 {
            break;
        }
    }
    let r = last.unwrap();
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn registration_redeems_the_voucher_and_signs_the_member_in() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let v = app.vouchers(&p, 1, Some("REG")).await;
    let r = app
        .send(key(app.post("/auth/register"), &p.t.api_key).json(&json!({
            "voucherCode": v[0]["code"].as_str().unwrap().to_lowercase(),
            "email": "Sam@Example.com", "password": PASSWORD, "name": "Sam Lee"
        })))
        .await;
    r.assert_status(201);
    let d = &r.body["data"];
    assert_eq!(d["member"]["email"], "sam@example.com");
    assert_eq!(d["member"]["voucherCode"], v[0]["code"]);
    let claims = app
        .state
        .jwt
        .verify(
            d["accessToken"].as_str().unwrap(),
            portal_shared::domain::auth::TokenType::Member,
        )
        .unwrap();
    assert_eq!(claims.client, p.t.client_id);
    assert_eq!(d["tokenType"], "Bearer");
    assert_eq!(d["expiresIn"], 900);
    assert!(d["refreshToken"].as_str().is_some_and(|t| !t.is_empty()));
    // The member token is not a partner token.
    app.send(bearer(
        app.get("/partner-auth/me"),
        d["accessToken"].as_str().unwrap(),
    ))
    .await
    .assert_error(401, "UNAUTHORIZED");
    // Login and refresh.
    let login = app
        .send(
            key(app.post("/auth/login"), &p.t.api_key)
                .json(&json!({"email": "sam@example.com", "password": PASSWORD})),
        )
        .await;
    login.assert_status(200);
    let rt = login.body["data"]["refreshToken"].as_str().unwrap();
    let refreshed = app
        .send(key(app.post("/auth/refresh"), &p.t.api_key).json(&json!({"refreshToken": rt})))
        .await;
    refreshed.assert_status(200);
    assert_eq!(refreshed.body["data"]["tokenType"], "Bearer");
    assert_eq!(refreshed.body["data"]["expiresIn"], 900);
    assert!(refreshed.body["data"]["accessToken"].is_string());
    assert_eq!(login.body["data"]["member"]["email"], "sam@example.com");
    app.send(key(app.post("/auth/refresh"), &p.t.api_key).json(&json!({"refreshToken": rt})))
        .await
        .assert_error(401, "UNAUTHORIZED");
    // A member of partner A cannot log in through partner B's app.
    let q = app.partner().await;
    app.send(
        key(app.post("/auth/login"), &q.t.api_key)
            .json(&json!({"email": "sam@example.com", "password": PASSWORD})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.send(
        key(app.post("/auth/login"), &p.t.api_key)
            .json(&json!({"email": "sam@example.com", "password": "wrong-password"})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn unusable_codes_give_a_reason_and_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let q = app.partner().await;
    let v = app.vouchers(&p, 3, None).await;
    let foreign = app.vouchers(&q, 1, None).await;
    app.expire_voucher(&v[0], "1 hour").await;
    app.revoke_voucher(&p, &v[1]).await.assert_status(200);
    let reg = |code: &serde_json::Value, email: &str| {
        key(app.post("/auth/register"), &p.t.api_key)
            .json(&json!({"voucherCode": code, "email": email, "password": PASSWORD, "name": "X"}))
    };
    app.send(reg(&v[0]["code"], "a@example.com"))
        .await
        .assert_error(422, "VOUCHER_EXPIRED");
    app.send(reg(&v[1]["code"], "b@example.com"))
        .await
        .assert_error(422, "VOUCHER_REVOKED");
    app.send(reg(&json!("NOPE-00000000"), "c@example.com"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(reg(&foreign[0]["code"], "d@example.com"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(reg(&v[2]["code"], "e@example.com"))
        .await
        .assert_status(201);
    app.send(reg(&v[2]["code"], "f@example.com"))
        .await
        .assert_error(409, "VOUCHER_REDEEMED");
    // Bad input: 400 with every field named.
    let r = app
        .send(
            key(app.post("/auth/register"), &p.t.api_key).json(
                &json!({"voucherCode": "", "email": "nope", "password": "short", "name": ""}),
            ),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.error_fields();
    for f in ["email", "password", "name", "voucherCode"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    // Only the one good registration exists, and the foreign voucher is untouched.
    assert_eq!(app.member_count(p.t.client_id).await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM vouchers WHERE client_id = $1 AND status = 'active'",
            q.t.client_id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_taken_email_rolls_the_redemption_back() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    app.member(&p, "taken@example.com", "First").await;
    let v = app.vouchers(&p, 1, None).await;
    let r = app
        .send(key(app.post("/auth/register"), &p.t.api_key).json(&json!({
            "voucherCode": v[0]["code"], "email": "TAKEN@example.com", "password": PASSWORD, "name": "Second"
        })))
        .await;
    r.assert_error(409, "EMAIL_TAKEN");
    let status: String = sqlx::query_scalar("SELECT status FROM vouchers WHERE id = $1")
        .bind(v[0]["id"].as_i64().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "active", "the voucher is still usable");
}

#[tokio::test]
async fn of_fifty_concurrent_registrations_with_one_code_exactly_one_succeeds() {
    // Fifty phones (fifty addresses behind our proxy), so no guessing budget is shared.
    let app = TestApp::spawn_with(|v| {
        v.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    })
    .await;
    let p = app.partner().await;
    let v = app.vouchers(&p, 1, None).await;
    let code = v[0]["code"].as_str().unwrap().to_string();
    let base = app.serve_tcp().await;
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let req = http
            .post(format!("{base}/auth/register"))
            .header("x-api-key", &p.t.api_key)
            .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
            .json(&json!({
                "voucherCode": code, "email": format!("racer{i}@example.com"), "password": PASSWORD, "name": format!("Racer {i}")
            }));
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            (status, body)
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            409 => {
                assert_eq!(body["error"]["code"], "VOUCHER_REDEEMED");
                conflicts += 1
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, conflicts), (1, 49));
    assert_eq!(app.member_count(p.t.client_id).await, 1);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM refresh_tokens WHERE client_id = $1 AND member_id IS NOT NULL",
            p.t.client_id
        )
        .await,
        1
    );
}
