//! Voucher generation, listing, revocation, statistics.

use portal_tests::{key, TestApp};
use serde_json::json;

const COUNT: &str = "SELECT count(*) FROM vouchers WHERE client_id = $1";

#[tokio::test]
async fn generation_creates_unique_codes_in_one_batch() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let r = app
        .send(
            app.as_admin(&p, app.post("/partner/vouchers"))
                .json(&json!({
                    "quantity": 500, "prefix": "studio", "expiresAt": "2099-12-31T23:59:59Z"
                })),
        )
        .await;
    r.assert_status(201);
    let d = &r.body["data"];
    let vouchers = d["vouchers"].as_array().unwrap();
    assert_eq!(vouchers.len(), 500);
    assert_eq!(d["quantity"], 500);
    let batch = d["batchId"].as_str().unwrap();
    let mut codes: Vec<&str> = vouchers
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    for (v, c) in vouchers.iter().zip(&codes) {
        assert_eq!(v["status"], "active");
        assert_eq!(v["batchId"], batch);
        assert_eq!(v["expiresAt"], "2099-12-31T23:59:59Z");
        let body = c.strip_prefix("STUDIO-").expect("prefix upper-cased");
        assert_eq!(body.len(), 8);
        assert!(
            body.bytes()
                .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b)),
            "{c}"
        );
    }
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 500);
    assert_eq!(app.count(COUNT, p.t.client_id).await, 500);
    // The batch is listable by its id and audited.
    let r = app
        .send(app.as_admin(
            &p,
            app.get(&format!("/partner/vouchers?batchId={batch}&limit=1")),
        ))
        .await;
    assert_eq!(r.body["data"]["pagination"]["total"], 500);
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'vouchers.generate'",
            p.t.client_id,
        )
        .await;
    assert_eq!(audited, 1);
    // Without a prefix the code is the 8 characters alone.
    let plain = app.vouchers(&p, 1, None).await;
    assert_eq!(plain[0]["code"].as_str().unwrap().len(), 8);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let req = |body: serde_json::Value, k: &str| {
        app.as_admin(&p, app.post("/partner/vouchers"))
            .add_header("idempotency-key", k, true)
            .json(&body)
    };
    let first = app.send(req(json!({"quantity": 3}), "retry-1")).await;
    first.assert_status(201);
    let again = app.send(req(json!({"quantity": 3}), "retry-1")).await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body, again.body);
    assert_eq!(app.count(COUNT, p.t.client_id).await, 3);
    // Same key, different request: refused, nothing created.
    app.send(req(json!({"quantity": 4}), "retry-1"))
        .await
        .assert_error(422, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.count(COUNT, p.t.client_id).await, 3);
    // Keys are per client: another partner may use the same key.
    let q = app.partner().await;
    let r = app
        .send(
            app.as_admin(&q, app.post("/partner/vouchers"))
                .add_header("idempotency-key", "retry-1", true)
                .json(&json!({"quantity": 3})),
        )
        .await;
    r.assert_status(201);
    assert_ne!(r.body, first.body);
    // Concurrent retries with one key create one batch.
    let key_c = "concurrent-1";
    let svc = app.service.clone();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let svc = svc.clone();
        let req = req(json!({"quantity": 2}), key_c);
        tasks.push(tokio::spawn(
            async move { req.send(&*svc).await.status_code },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().map(|s| s.as_u16()), Some(201));
    }
    assert_eq!(app.count(COUNT, p.t.client_id).await, 5);
}

#[tokio::test]
async fn bad_generation_requests_are_400_and_create_nothing() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    for body in [
        json!({}),
        json!({"quantity": 0}),
        json!({"quantity": 501}),
        json!({"quantity": "5"}),
        json!({"quantity": 2.5}),
        json!({"quantity": 5, "prefix": "has space"}),
        json!({"quantity": 5, "prefix": "WAYTOOLONGPREFIX17"}),
        json!({"quantity": 5, "prefix": 7}),
        json!({"quantity": 5, "expiresAt": "2001-01-01T00:00:00Z"}),
        json!({"quantity": 5, "expiresAt": "next week"}),
        json!({"quantity": 5, "colour": "red"}),
        json!([1, 2]),
    ] {
        let r = app
            .send(app.as_admin(&p, app.post("/partner/vouchers")).json(&body))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
    }
    let r = app
        .send(
            app.as_admin(&p, app.post("/partner/vouchers"))
                .raw_json("{\"quantity\": "),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let r = app
        .send(
            app.as_admin(&p, app.post("/partner/vouchers"))
                .add_header("idempotency-key", "x".repeat(300), true)
                .json(&json!({"quantity": 1})),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(app.count(COUNT, p.t.client_id).await, 0);
    // A viewer cannot generate.
    let r = app
        .send(
            key(
                portal_tests::bearer(app.post("/partner/vouchers"), &p.viewer),
                &p.t.api_key,
            )
            .json(&json!({"quantity": 1})),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(app.count(COUNT, p.t.client_id).await, 0);
}

#[tokio::test]
async fn list_filters_sorts_and_computes_expired() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let v = app.vouchers(&p, 6, Some("LST")).await;
    // One expired (moved into the past directly), one revoked.
    app.expire_voucher(&v[0], "1 day").await;
    app.revoke_voucher(&p, &v[1]).await.assert_status(200);
    let list = |q: &str| app.send(app.as_admin(&p, app.get(&format!("/partner/vouchers{q}"))));
    let r = list("?status=expired").await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["pagination"]["total"], 1);
    assert_eq!(r.body["data"]["vouchers"][0]["status"], "expired");
    assert_eq!(
        list("?status=revoked").await.body["data"]["pagination"]["total"],
        1
    );
    assert_eq!(
        list("?status=active").await.body["data"]["pagination"]["total"],
        4
    );
    // Search by part of a code, case-insensitively.
    let code = v[3]["code"].as_str().unwrap();
    let r = list(&format!("?search={}", &code[4..10].to_lowercase())).await;
    assert_eq!(r.body["data"]["vouchers"][0]["code"], code);
    // Pagination and sorting.
    let r = list("?limit=4&page=2&sort=code").await;
    assert_eq!(
        r.body["data"]["pagination"],
        json!({"page": 2, "limit": 4, "total": 6, "totalPages": 2})
    );
    let r = list("?sort=-code&limit=100").await;
    let codes: Vec<&str> = r.body["data"]["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].as_str().unwrap())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(codes, sorted);
    for bad in [
        "?status=used",
        "?sort=secret",
        "?page=0",
        "?limit=101",
        "?batchId=nope",
        "?page=abc",
    ] {
        list(bad).await.assert_error(400, "VALIDATION_ERROR");
    }
    // Stats add up.
    let s = app
        .send(app.as_admin(&p, app.get("/partner/vouchers/stats")))
        .await;
    let d = &s.body["data"];
    assert_eq!(d["total"], 6);
    assert_eq!(
        (
            d["active"].as_i64().unwrap(),
            d["expired"].as_i64().unwrap(),
            d["revoked"].as_i64().unwrap(),
            d["redeemed"].as_i64().unwrap()
        ),
        (4, 1, 1, 0)
    );
}

#[tokio::test]
async fn revoke_is_idempotent_and_refuses_redeemed_vouchers() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let v = app.vouchers(&p, 2, None).await;
    let path = format!("/partner/vouchers/{}", v[0]["id"]);
    let r = app.send(app.as_admin(&p, app.delete(&path))).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["voucher"]["status"], "revoked");
    assert_eq!(r.body["data"]["revokedNow"], true);
    let r = app.send(app.as_admin(&p, app.delete(&path))).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["revokedNow"], false);
    // Redeem the other one, then try to revoke it.
    app.send(key(app.post("/auth/register"), &p.t.api_key).json(&json!({
        "voucherCode": v[1]["code"], "email": "sam@example.com", "password": portal_tests::PASSWORD, "name": "Sam"
    })))
    .await
    .assert_status(201);
    app.revoke_voucher(&p, &v[1])
        .await
        .assert_error(409, "VOUCHER_REDEEMED");
    // Ids are positive whole numbers: anything else names no voucher (and no route).
    app.send(app.as_admin(&p, app.delete("/partner/vouchers/abc")))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(app.as_admin(&p, app.delete("/partner/vouchers/0")))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    app.send(app.as_admin(&p, app.delete("/partner/vouchers/999999999")))
        .await
        .assert_error(404, "NOT_FOUND");
    // The redeemed voucher shows who redeemed it and when.
    let r = app
        .send(app.as_admin(&p, app.get("/partner/vouchers?status=redeemed")))
        .await;
    let row = &r.body["data"]["vouchers"][0];
    assert_eq!(row["redeemedBy"]["email"], "sam@example.com");
    assert!(row["redeemedAt"].is_string());
    let s = app
        .send(app.as_admin(&p, app.get("/partner/vouchers/stats")))
        .await;
    assert_eq!(s.body["data"]["redemptionRate"], 50.0);
}

#[tokio::test]
async fn every_bad_list_parameter_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let r = app
        .send(app.as_admin(
            &p,
            app.get("/partner/vouchers?status=bogus&sort=bogus&batchId=x&limit=0"),
        ))
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let mut fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["batchId", "limit", "sort", "status"], "{}", r.body);
}
