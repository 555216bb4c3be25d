//! Abuse resistance: throttles that parallel guesses cannot outrun, one voucher-guessing budget,
//! bounded password hashing, client addresses behind proxies, refresh families under races, and
//! refused weak signing keys.

use std::time::Duration;

use futures::future::join_all;
use portal_tests::{key, Resp, TestApp, PASSWORD};
use serde_json::{json, Value};

/// Counts the statuses of `responses`; every 429 must carry `Retry-After`.
fn tally(responses: &[Resp]) -> (usize, usize) {
    let mut evaluated = 0;
    let mut throttled = 0;
    for r in responses {
        match r.status {
            401 => evaluated += 1,
            429 => {
                r.assert_error(429, "RATE_LIMITED");
                let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=900).contains(&retry), "{retry}");
                throttled += 1;
            }
            other => panic!("unexpected status {other}: {}", r.text),
        }
    }
    (evaluated, throttled)
}

#[tokio::test]
async fn parallel_wrong_staff_logins_are_evaluated_at_most_five_times() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let guesses: Vec<String> = (0..50).map(|i| format!("wrong-{i}")).collect();
    let responses = join_all(guesses.iter().map(|pw| app.login(&t.admin_email, pw))).await;
    let (evaluated, throttled) = tally(&responses);
    assert!(evaluated <= 5, "{evaluated} wrong passwords were checked");
    assert_eq!((evaluated, throttled), (5, 45));
    // The right password is refused too while the window is open.
    app.login(&t.admin_email, PASSWORD)
        .await
        .assert_error(429, "RATE_LIMITED");
}

#[tokio::test]
async fn parallel_wrong_member_logins_are_evaluated_at_most_five_times() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let email = "sam@member.example";
    app.member(&p, email, "Sam").await;
    let login = |i: usize| {
        app.send(
            key(app.post("/auth/login"), &p.t.api_key)
                .json(&json!({"email": email, "password": format!("wrong-{i}")})),
        )
    };
    let responses = join_all((0..50).map(login)).await;
    let (evaluated, throttled) = tally(&responses);
    assert!(evaluated <= 5, "{evaluated} wrong passwords were checked");
    assert_eq!(evaluated + throttled, 50);
}

#[tokio::test]
async fn a_successful_login_gives_its_attempt_back() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    // 30 good logins from one address never reach the address limit of 20.
    for _ in 0..30 {
        app.login(&t.admin_email, PASSWORD).await.assert_status(200);
    }
    // Four failures, a success, then five more failures are allowed: the success started over.
    for _ in 0..4 {
        app.login(&t.viewer_email, "nope-nope")
            .await
            .assert_status(401);
    }
    app.login(&t.viewer_email, PASSWORD)
        .await
        .assert_status(200);
    for _ in 0..5 {
        app.login(&t.viewer_email, "nope-nope")
            .await
            .assert_status(401);
    }
    app.login(&t.viewer_email, "nope-nope")
        .await
        .assert_error(429, "RATE_LIMITED");
}

#[tokio::test]
async fn registrations_with_unusable_codes_spend_the_validation_budget() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let good = app.vouchers(&p, 2, None).await;
    let register = |code: &str, email: &str| {
        key(app.post("/auth/register"), &p.t.api_key).json(
            &json!({"voucherCode": code, "email": email, "password": PASSWORD, "name": "Guesser"}),
        )
    };
    // Usable codes are no guesses: many registrations do not touch the budget.
    app.send(register(good[0]["code"].as_str().unwrap(), "one@m.example"))
        .await
        .assert_status(201);
    // Ten registrations with made-up codes: each is a guess (404), then the budget is spent.
    for i in 0..10 {
        app.send(register(&format!("GUESS-{i:08}"), "g@m.example"))
            .await
            .assert_error(404, "NOT_FOUND");
    }
    // Validation shares the budget…
    let r = app
        .send(
            key(app.post("/auth/voucher/validate"), &p.t.api_key)
                .json(&json!({"code": good[1]["code"]})),
        )
        .await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
    // …and so does registration, even with a good code, until the window passes.
    app.send(register(good[1]["code"].as_str().unwrap(), "two@m.example"))
        .await
        .assert_error(429, "RATE_LIMITED");
    assert_eq!(
        app.member_count(p.t.client_id).await,
        1,
        "a refused registration creates nothing"
    );
}

#[tokio::test]
async fn the_guessing_budget_is_per_key_and_per_address() {
    let app = TestApp::spawn().await;
    let a = app.partner().await;
    let b = app.partner().await;
    let c = app.partner().await;
    let guess = |api_key: String, i: usize| {
        let app = &app;
        async move {
            app.send(
                key(app.post("/auth/voucher/validate"), &api_key)
                    .json(&json!({"code": format!("GUESS-{i:08}")})),
            )
            .await
        }
    };
    // 15 parallel guesses with one key: exactly 10 are looked up (all 15 count).
    let responses = join_all((0..15).map(|i| guess(a.t.api_key.clone(), i))).await;
    let looked_up = responses.iter().filter(|r| r.status == 200).count();
    let refused = responses.iter().filter(|r| r.status == 429).count();
    assert_eq!((looked_up, refused), (10, 5));
    // Another key from the same address has a budget of its own…
    for i in 0..10 {
        guess(b.t.api_key.clone(), i).await.assert_status(200);
    }
    // …but the address as a whole stops at 30 guesses a minute, whatever the key.
    for i in 0..5 {
        guess(c.t.api_key.clone(), i).await.assert_status(200);
    }
    let r = guess(c.t.api_key.clone(), 99).await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
}

/// Failed staff logins through a real TCP connection, with `X-Forwarded-For`.
async fn login_via(
    http: &reqwest::Client,
    base: &str,
    forwarded: &str,
    email: &str,
    pw: &str,
) -> u16 {
    http.post(format!("{base}/partner-auth/login"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"email": email, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Twenty failed logins for unknown emails through `base`, the `i`-th with
/// `X-Forwarded-For: forwarded(i)`; each must answer 401.
async fn twenty_failed_logins_via(
    http: &reqwest::Client,
    base: &str,
    forwarded: impl Fn(usize) -> String,
) {
    for i in 0..20 {
        let st = login_via(
            http,
            base,
            &forwarded(i),
            &format!("p{i}@x.example"),
            "bad-bad",
        )
        .await;
        assert_eq!(st, 401);
    }
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Without TRUSTED_PROXIES the header is ignored: every caller below is 127.0.0.1.
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let base = app.serve_tcp().await;
    let http = reqwest::Client::new();
    twenty_failed_logins_via(&http, &base, |i| format!("198.51.100.{i}")).await;
    assert_eq!(
        login_via(&http, &base, "203.0.113.99", &t.admin_email, PASSWORD).await,
        429,
        "a forged X-Forwarded-For must not escape the address limit"
    );

    // Behind trusted proxies each client has its own window.
    let app = TestApp::spawn_with(|v| {
        v.insert("TRUSTED_PROXIES".into(), "127.0.0.1, 10.0.0.0/8".into());
    })
    .await;
    let t = app.tenant().await;
    let base = app.serve_tcp().await;
    // The client, then an inner proxy of ours: the right-most untrusted entry is the client.
    twenty_failed_logins_via(&http, &base, |i| {
        format!("192.0.2.1, 198.51.100.7, 10.1.2.{i}")
    })
    .await;
    assert_eq!(
        login_via(&http, &base, "198.51.100.7", &t.admin_email, PASSWORD).await,
        429,
        "the client behind the proxies is throttled"
    );
    assert_eq!(
        login_via(&http, &base, "198.51.100.8", &t.admin_email, PASSWORD).await,
        200,
        "other clients of the same proxy are not"
    );
    // The audit log names the client, not the proxy.
    let ip: Option<String> = sqlx::query_scalar(
        "SELECT host(ip) FROM audit_log WHERE client_id = $1 AND action = 'auth.login' ORDER BY id DESC LIMIT 1",
    )
    .bind(t.client_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(ip.as_deref(), Some("198.51.100.8"));
}

#[tokio::test]
async fn ipv6_clients_are_throttled_by_their_64() {
    let app = TestApp::spawn_with(|v| {
        v.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    })
    .await;
    let t = app.tenant().await;
    let base = app.serve_tcp().await;
    let http = reqwest::Client::new();
    // Twenty different /128s of one /64.
    twenty_failed_logins_via(&http, &base, |i| format!("2001:db8:1:2::{:x}", i + 1)).await;
    assert_eq!(
        login_via(
            &http,
            &base,
            "2001:db8:1:2:ffff::1",
            &t.admin_email,
            PASSWORD
        )
        .await,
        429
    );
    assert_eq!(
        login_via(&http, &base, "2001:db8:1:3::1", &t.admin_email, PASSWORD).await,
        200
    );
}

#[tokio::test]
async fn password_hashing_beyond_the_cores_waits_then_answers_503() {
    // The real binary, so the hashing slots are its own; a short wait so the excess shows.
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (mut api, base) = app
        .api_process(&[
            ("PASSWORD_HASH_WAIT_MS", "50"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ])
        .await;
    let http = reqwest::Client::new();
    // 200 parallel logins of unknown accounts from 200 addresses: no throttle applies, each
    // costs a hash.
    let statuses = join_all((0..200).map(|i| {
        let (http, base) = (&http, &base);
        async move {
            let r = http
                .post(format!("{base}/partner-auth/login"))
                .header(
                    "x-forwarded-for",
                    format!("198.51.{}.{}", i / 200, i % 200 + 1),
                )
                .json(&json!({"email": format!("nobody{i}@x.example"), "password": "whatever"}))
                .send()
                .await
                .unwrap();
            let retry = r.headers().get("retry-after").is_some();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, retry, body)
        }
    }))
    .await;
    let busy: Vec<_> = statuses.iter().filter(|(s, _, _)| *s == 503).collect();
    let checked = statuses.iter().filter(|(s, _, _)| *s == 401).count();
    assert!(
        !busy.is_empty(),
        "200 parallel hashes on a 50 ms wait must refuse some"
    );
    assert!(checked > 0, "some are checked");
    assert_eq!(busy.len() + checked, 200, "only 401 and 503: {statuses:?}");
    for (_, retry, body) in busy {
        assert!(retry, "503 carries Retry-After");
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    }
    // The process is still healthy and logs in the real account.
    let r = http
        .post(format!("{base}/partner-auth/login"))
        .json(&json!({"email": t.admin_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    api.kill().await.ok();
}

#[tokio::test]
async fn refresh_families_cannot_be_outrun() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.send(
                app.post("/partner-auth/refresh")
                    .json(&json!({"refreshToken": token})),
            )
            .await
        }
    };
    // Twelve logins (one after another: parallel logins of one email are throttled); in each, a
    // rotation loop races a replay of an old token and a logout.
    let mut logins = Vec::new();
    for _ in 0..12 {
        logins.push(app.tokens(&t.admin_email).await.1);
    }
    let families = join_all(logins.into_iter().enumerate().map(|(round, first)| {
        let (app, refresh) = (&app, &refresh);
        async move {
            let r = refresh(first.clone()).await;
            r.assert_status(200);
            let current = r.body["data"]["refreshToken"].as_str().unwrap().to_string();
            let rotations = async {
                let mut minted = vec![current.clone()];
                let mut token = current.clone();
                // Bounded: a chain that outran its revocation would rotate forever.
                for _ in 0..200 {
                    let r = refresh(token.clone()).await;
                    if r.status != 200 {
                        break;
                    }
                    token = r.body["data"]["refreshToken"].as_str().unwrap().to_string();
                    minted.push(token.clone());
                }
                minted
            };
            let attacks = async {
                tokio::time::sleep(Duration::from_millis(5 * (round as u64 % 4))).await;
                if round % 2 == 0 {
                    // Reuse of the first (already used) token revokes the family.
                    refresh(first.clone()).await.assert_status(401);
                } else {
                    app.send(
                        app.post("/partner-auth/logout")
                            .json(&json!({"refreshToken": current})),
                    )
                    .await
                    .assert_status(200);
                }
            };
            let (minted, ()) = tokio::join!(rotations, attacks);
            let mut all = minted;
            all.push(first);
            all
        }
    }))
    .await;
    let mut tried = 0;
    for tokens in families {
        for token in tokens {
            refresh(token).await.assert_status(401);
            tried += 1;
        }
    }
    assert!(tried > 24, "some rotations raced the revocations: {tried}");
    assert_eq!(
        app.live_refresh_tokens(t.client_id).await,
        0,
        "no token of a raced family is left alive"
    );
}

#[tokio::test]
async fn the_api_refuses_to_start_with_a_weak_signing_key() {
    let app = TestApp::spawn().await;
    for secret in [
        "change-me-change-me-change-me-change-me",
        "short-secret",
        "abababababababababababababababababab",
    ] {
        let out = tokio::process::Command::new(portal_tests::binary("portal-api"))
            .env_clear()
            .envs(app.vars.iter())
            .env("JWT_SECRET", secret)
            .env("PORTAL_BIND", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        assert!(!out.status.success(), "{secret} started a server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
        assert!(
            !stderr.contains(secret),
            "the key itself is not printed: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_revocation_never_misses_a_token_minted_beside_it() {
    use portal_shared::pg::sessions;
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let staff_id: portal_shared::domain::ids::StaffId =
        sqlx::query_scalar("SELECT id FROM staff WHERE client_id = $1 AND email = $2")
            .bind(t.client_id)
            .bind(&t.admin_email)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // 150 families, each with a used token and a current one; at the same instant the current
    // one is rotated and the family revoked (by logout, or by replaying the used token).
    let outcomes = join_all((0..150).map(|i| {
        let db = app.db.clone();
        async move {
            let used = sessions::issue_new(&db, t.client_id, sessions::Subject::Staff(staff_id))
                .await
                .unwrap();
            let current = sessions::rotate(&db, &used, true)
                .await
                .unwrap()
                .unwrap()
                .refresh_token;
            let revoke = async {
                if i % 2 == 0 {
                    sessions::revoke_family(&db, &current).await.unwrap();
                } else {
                    let reuse = sessions::rotate(&db, &used, true).await.unwrap();
                    assert!(matches!(reuse, Err(sessions::RotateFailure::Reused { .. })));
                }
            };
            let (rotated, ()) = tokio::join!(sessions::rotate(&db, &current, true), revoke);
            rotated.unwrap().ok().map(|r| r.refresh_token)
        }
    }))
    .await;
    let escaped: Vec<String> = outcomes.into_iter().flatten().collect();
    for token in &escaped {
        let again = sessions::rotate(&app.db, token, true).await.unwrap();
        assert!(
            again.is_err(),
            "a token minted beside a revocation still works"
        );
    }
    assert_eq!(
        app.live_refresh_tokens(t.client_id).await,
        0,
        "every token of every revoked family is revoked"
    );
}
