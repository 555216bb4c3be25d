//! Cross-tenant matrix: partner B's token and key against each of partner A's ids and lists.

use portal_tests::{bearer, key, TestApp};
use serde_json::json;

#[tokio::test]
async fn partner_b_never_sees_or_changes_partner_a() {
    let app = TestApp::spawn().await;
    let a = app.partner().await;
    let b = app.partner().await;
    let va = app.vouchers(&a, 2, Some("AAA")).await;
    let (member_a, _) = app.member(&a, "only-a@example.com", "Only A").await;
    let product_a = app
        .send(
            bearer(app.post("/partner/products"), &a.admin)
                .json(&json!({"name": "A's product", "status": "active"})),
        )
        .await
        .body["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.send(
        bearer(app.put("/partner/strings"), &a.admin).json(&json!({"st_aboutus": "<p>A</p>"})),
    )
    .await
    .assert_status(200);
    let voucher_a = va[0]["id"].as_i64().unwrap();

    // Ids of A, with B's credentials: 404, never the row, never 403.
    for (method, path) in [
        ("GET", format!("/partner/members/{member_a}")),
        ("GET", format!("/partner/products/{product_a}")),
        ("PUT", format!("/partner/products/{product_a}")),
        ("DELETE", format!("/partner/products/{product_a}")),
        ("DELETE", format!("/partner/vouchers/{voucher_a}")),
    ] {
        let req = match method {
            "GET" => app.get(&path),
            "PUT" => app.put(&path).json(&json!({"name": "hijacked"})),
            _ => app.delete(&path),
        };
        let r = app.send(app.as_admin(&b, req)).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert!(!r.text.contains("only-a@example.com") && !r.text.contains("A's product"));
    }
    app.send(key(
        app.get(&format!("/products/{product_a}")),
        &b.t.api_key,
    ))
    .await
    .assert_error(404, "NOT_FOUND");

    // Lists of B show nothing of A.
    for path in [
        "/partner/members",
        "/partner/vouchers",
        "/partner/products",
        "/partner/audit-log",
    ] {
        let r = app.send(app.as_admin(&b, app.get(path))).await;
        r.assert_status(200);
        assert!(
            !r.text.contains("only-a@example.com")
                && !r.text.contains("AAA-")
                && !r.text.contains("A's product"),
            "{path}: {}",
            r.text
        );
    }
    let s = app
        .send(app.as_admin(&b, app.get("/partner/vouchers/stats")))
        .await;
    assert_eq!(s.body["data"]["total"], 0);
    let r = app
        .send(bearer(app.get("/partner/strings"), &b.admin))
        .await;
    assert_eq!(r.body["data"], json!({}));
    let r = app.send(key(app.get("/products"), &b.t.api_key)).await;
    assert_eq!(r.body["data"]["pagination"]["total"], 0);
    // B's key cannot redeem A's voucher.
    app.send(key(app.post("/auth/register"), &b.t.api_key).json(&json!({
        "voucherCode": va[1]["code"], "email": "thief@example.com", "password": portal_tests::PASSWORD, "name": "T"
    })))
    .await
    .assert_error(404, "NOT_FOUND");

    // Nothing of A changed.
    let r = app
        .send(bearer(
            app.get(&format!("/partner/products/{product_a}")),
            &a.admin,
        ))
        .await;
    assert_eq!(r.body["data"]["name"], "A's product");
    let r = app
        .send(app.as_admin(&a, app.get("/partner/vouchers/stats")))
        .await;
    // Two generated here, one more redeemed by A's member.
    assert_eq!(r.body["data"]["active"], 2);
    assert_eq!(r.body["data"]["redeemed"], 1);
}

#[tokio::test]
async fn audit_log_is_admin_only_and_filterable() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    app.vouchers(&p, 1, None).await;
    app.send(bearer(app.get("/partner/audit-log"), &p.viewer))
        .await
        .assert_error(403, "FORBIDDEN");
    let r = app
        .send(bearer(app.get("/partner/audit-log"), &p.admin))
        .await;
    r.assert_status(200);
    let actions: Vec<&str> = r.body["data"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"vouchers.generate") && actions.contains(&"auth.login"),
        "{actions:?}"
    );
    let r = app
        .send(bearer(
            app.get("/partner/audit-log?action=vouchers.generate"),
            &p.admin,
        ))
        .await;
    assert_eq!(r.body["data"]["pagination"]["total"], 1);
    let e = &r.body["data"]["entries"][0];
    assert_eq!(e["actorType"], "staff");
    assert_eq!(e["details"]["quantity"], 1);
    let today = chrono::Utc::now().date_naive();
    let r = app
        .send(bearer(
            app.get(&format!(
                "/partner/audit-log?from={}&to={}",
                today.pred_opt().unwrap(),
                today.succ_opt().unwrap()
            )),
            &p.admin,
        ))
        .await;
    assert!(r.body["data"]["pagination"]["total"].as_i64().unwrap() >= 3);
    let r = app
        .send(bearer(
            app.get("/partner/audit-log?from=2000-01-01&to=2000-01-02"),
            &p.admin,
        ))
        .await;
    assert_eq!(r.body["data"]["pagination"]["total"], 0);
    app.send(bearer(
        app.get("/partner/audit-log?from=yesterday"),
        &p.admin,
    ))
    .await
    .assert_error(400, "VALIDATION_ERROR");
    app.send(bearer(
        app.get("/partner/audit-log?from=2026-02-01&to=2026-01-01"),
        &p.admin,
    ))
    .await
    .assert_error(400, "VALIDATION_ERROR");
}
