//! Content strings: merge, key pattern, size limits, sanitizing.

use portal_tests::{bearer, key, TestApp};
use serde_json::json;

#[tokio::test]
async fn strings_merge_and_are_sanitized() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let put = |body: serde_json::Value| bearer(app.put("/partner/strings"), &p.admin).json(&body);
    let r = app
        .send(put(json!({
            "st_aboutus": "<h1>About Us</h1><p onclick=\"x()\">Hi <a href=\"javascript:alert(1)\">link</a></p><script>steal()</script><style>p{}</style>",
            "st_privacypolicy": "<h1>Privacy</h1><p>Policy <a href=\"https://example.com/p\">here</a></p>"
        })))
        .await;
    r.assert_status(200);
    let about = r.body["data"]["st_aboutus"].as_str().unwrap();
    for banned in ["<script", "onclick", "javascript:", "<style", "steal()"] {
        assert!(!about.contains(banned), "{banned} in {about}");
    }
    assert!(about.starts_with("<h1>About Us</h1><p>Hi <a"), "{about}");
    assert!(r.body["data"]["st_privacypolicy"]
        .as_str()
        .unwrap()
        .contains("https://example.com/p"));
    // Merge: only the sent key changes.
    let r = app.send(put(json!({"st_aboutus": "<p>New</p>"}))).await;
    assert_eq!(r.body["data"]["st_aboutus"], "<p>New</p>");
    assert!(r.body["data"]["st_privacypolicy"]
        .as_str()
        .unwrap()
        .starts_with("<h1>Privacy"));
    // The app sees the same strings in the seed's array shape.
    let r = app.send(key(app.get("/app/strings"), &p.t.api_key)).await;
    assert_eq!(r.body["data"][0]["st_aboutus"], "<p>New</p>");
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'strings.update'",
            p.t.client_id,
        )
        .await;
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn bad_string_updates_change_nothing() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let put = |body: serde_json::Value| bearer(app.put("/partner/strings"), &p.admin).json(&body);
    app.send(put(json!({"st_keep": "<p>keep</p>"})))
        .await
        .assert_status(200);
    for body in [
        json!({"aboutus": "x"}),
        json!({"st_About": "x"}),
        json!({"st_": "x"}),
        json!({"st_ok": 5}),
        json!({"st_ok": null}),
        json!({"st_ok": "a".repeat(64 * 1024 + 1)}),
        json!(["st_ok"]),
        json!("text"),
    ] {
        app.send(put(body))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    let many: serde_json::Map<String, serde_json::Value> =
        (0..101).map(|i| (format!("st_k{i}"), json!("v"))).collect();
    app.send(put(serde_json::Value::Object(many)))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // 100 keys in total at most, counting the stored ones.
    let ninety_nine: serde_json::Map<String, serde_json::Value> =
        (0..99).map(|i| (format!("st_k{i}"), json!("v"))).collect();
    app.send(put(serde_json::Value::Object(ninety_nine)))
        .await
        .assert_status(200);
    app.send(put(json!({"st_one_too_many": "x"})))
        .await
        .assert_error(422, "TOO_MANY_STRINGS");
    let r = app
        .send(bearer(app.get("/partner/strings"), &p.admin))
        .await;
    assert_eq!(r.body["data"].as_object().unwrap().len(), 100);
    assert_eq!(r.body["data"]["st_keep"], "<p>keep</p>");
    assert!(r.body["data"].get("st_one_too_many").is_none());
    app.send(bearer(app.put("/partner/strings"), &p.admin).raw_json("{\"st_x\": \"unterminated"))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_rejected_everywhere() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    for (method, path) in [
        ("POST", "/partner/vouchers"),
        ("POST", "/partner/products"),
        ("PUT", "/partner/strings"),
        ("POST", "/auth/register"),
        ("POST", "/auth/voucher/validate"),
        ("POST", "/auth/login"),
    ] {
        let req = |body: &str| {
            let b = if method == "POST" {
                app.post(path)
            } else {
                app.put(path)
            };
            app.as_admin(&p, b).raw_json(body.to_string())
        };
        let r = app.send(req("{not json")).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert_eq!(r.body["success"], false);
        let r = app.send(req(&big)).await;
        assert_eq!(r.status, 413, "{method} {path}: {}", r.text);
        assert_eq!(r.error_code(), "PAYLOAD_TOO_LARGE");
    }
    let rows = app
        .count(
            "SELECT (SELECT count(*) FROM vouchers WHERE client_id = $1) + (SELECT count(*) FROM products WHERE client_id = $1)
                  + (SELECT count(*) FROM content_strings WHERE client_id = $1) + (SELECT count(*) FROM members WHERE client_id = $1)",
            p.t.client_id,
        )
        .await;
    assert_eq!(rows, 0, "nothing was written");
}

#[tokio::test]
async fn content_urls_are_absolute_and_images_only_https() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let html = concat!(
        r#"<p><img src="https://cdn.example/ok.png" alt="ok">"#,
        r#"<img src="http://cdn.example/plain.png" alt="plain">"#,
        r#"<img src="//cdn.example/proto.png" alt="proto">"#,
        r#"<img src="/local.png" alt="local">"#,
        r#"<img src="data:image/png;base64,AAAA" alt="data"></p>"#,
        r#"<p><a href="https://site.example/s">s</a><a href="http://site.example/h">h</a>"#,
        r#"<a href="mailto:team@site.example">m</a><a href="//evil.example/x">pr</a>"#,
        r#"<a href="/partner/login">rel</a><a href="ftp://files.example/f">ftp</a>"#,
        r#"<a href="javascript:alert(1)">js</a></p>"#
    );
    let r = app
        .send(bearer(app.put("/partner/strings"), &p.admin).json(&json!({ "st_links": html })))
        .await;
    r.assert_status(200);
    let expected = concat!(
        r#"<p><img src="https://cdn.example/ok.png" alt="ok">"#,
        r#"<img alt="plain"><img alt="proto"><img alt="local"><img alt="data"></p>"#,
        r#"<p><a href="https://site.example/s" rel="noopener noreferrer">s</a>"#,
        r#"<a href="http://site.example/h" rel="noopener noreferrer">h</a>"#,
        r#"<a href="mailto:team@site.example" rel="noopener noreferrer">m</a>"#,
        r#"<a rel="noopener noreferrer">pr</a><a rel="noopener noreferrer">rel</a>"#,
        r#"<a rel="noopener noreferrer">ftp</a><a rel="noopener noreferrer">js</a></p>"#
    );
    assert_eq!(r.body["data"]["st_links"], expected);
    // What is stored is what the app gets.
    let stored: String = sqlx::query_scalar(
        "SELECT value FROM content_strings WHERE client_id = $1 AND key = 'st_links'",
    )
    .bind(p.t.client_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(stored, expected);
    let r = app.send(key(app.get("/app/strings"), &p.t.api_key)).await;
    assert_eq!(r.body["data"][0]["st_links"], expected);
}

/// The portal's live preview: the same sanitizing as a save, for admins, with nothing stored or
/// audited; a viewer may not use it (it is a write-shaped request), a bad key is a 400.
#[tokio::test]
async fn the_preview_sanitizes_like_a_save_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let body = json!({"st_aboutus": "<h1>Hi</h1><img src=\"http://x/a.png\" onerror=\"x()\"><script>steal()</script>"});
    let r = app
        .send(bearer(app.post("/partner/strings/preview"), &p.admin).json(&body))
        .await;
    r.assert_status(200);
    let saved = app
        .send(bearer(app.put("/partner/strings"), &p.admin).json(&body))
        .await;
    saved.assert_status(200);
    assert_eq!(
        r.body["data"]["st_aboutus"],
        saved.body["data"]["st_aboutus"]
    );
    assert_eq!(r.body["data"]["st_aboutus"], "<h1>Hi</h1><img>");
    // Only the save was audited; a preview of another key stored nothing.
    app.send(
        bearer(app.post("/partner/strings/preview"), &p.admin)
            .json(&json!({"st_other": "<p>x</p>"})),
    )
    .await
    .assert_status(200);
    let r = app
        .send(bearer(app.get("/partner/strings"), &p.admin))
        .await;
    assert!(r.body["data"].get("st_other").is_none(), "{}", r.body);
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action = 'strings.update'",
            p.t.client_id,
        )
        .await;
    assert_eq!(audited, 1);
    app.send(bearer(app.post("/partner/strings/preview"), &p.admin).json(&json!({"About": "x"})))
        .await
        .assert_status(400);
    app.send(bearer(app.post("/partner/strings/preview"), &p.viewer).json(&body))
        .await
        .assert_status(403);
}
