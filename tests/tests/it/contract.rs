//! The OpenAPI document is the contract: the router answers 405 with exactly the documented
//! methods, the document states the statuses every route can answer, and the bounds it states are
//! the ones the server enforces. (`scripts/schemathesis.sh` checks the whole document against a
//! running demo; these are the cheap guards that run with every `cargo test`.)

use portal_tests::{bearer, key, Partner, TestApp};
use salvo::test::{RequestBuilder, TestClient};
use serde_json::Value;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

async fn document(app: &TestApp) -> Value {
    let r = app.send(app.get("/openapi.json")).await;
    r.assert_status(200);
    r.body.clone()
}

/// A concrete path for a documented one: every parameter gets a value of its documented shape.
fn concrete(path: &str) -> String {
    path.replace("/partner/vouchers/{id}", "/partner/vouchers/1")
        .replace("/classes/{id}", "/classes/yoga-flow-1")
        .replace("{id}", "01a22e80-d7ea-76c2-b92e-bbebe5b85826")
        .replace("{jobId}", "01a22e80-d7ea-76c2-b92e-bbebe5b85826")
}

fn request(method: &str, path: &str) -> RequestBuilder {
    let url = TestApp::url(path);
    match method {
        "GET" => TestClient::get(url),
        "POST" => TestClient::post(url),
        "PUT" => TestClient::put(url),
        "DELETE" => TestClient::delete(url),
        "PATCH" => TestClient::patch(url),
        "OPTIONS" => TestClient::options(url),
        other => panic!("no request builder for {other}"),
    }
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((method.to_uppercase(), path.clone(), op.clone()));
        }
    }
    out
}

#[tokio::test]
async fn a_method_a_path_lacks_answers_405_naming_exactly_the_documented_methods() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        documented.sort();
        for method in METHODS {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let r = app.send(request(method, &concrete(path))).await;
            r.assert_error(405, "METHOD_NOT_ALLOWED");
            let mut allowed: Vec<String> = r
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
                .split(',')
                .map(|m| m.trim().to_string())
                .collect();
            allowed.sort();
            assert_eq!(allowed, documented, "Allow of {method} {path}");
            probed += 1;
        }
    }
    assert!(probed > 100, "only {probed} probes");
    // The two the contract check caught: `export` and `stats` are not voucher ids.
    for path in ["/partner/vouchers/export", "/partner/vouchers/stats"] {
        let r = app.send(request("DELETE", path)).await;
        r.assert_error(405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some("GET"), "{path}");
    }
}

#[tokio::test]
async fn the_document_states_the_statuses_routes_can_answer() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 41, "{} operations", ops.len());
    let has = |op: &Value, status: &str| op["responses"].get(status).is_some();
    let retry_after = |op: &Value, status: &str| {
        op["responses"][status]["headers"]
            .as_object()
            .is_some_and(|h| h.contains_key("Retry-After"))
    };
    for (method, path, op) in &ops {
        let name = format!("{method} {path}");
        // Every route but liveness and metrics reads Postgres or ClickHouse: a dependency that
        // is down or a query over its time limit answers 503 with Retry-After.
        if !matches!(path.as_str(), "/health" | "/metrics") {
            assert!(has(op, "503"), "{name}: no 503");
            assert!(retry_after(op, "503"), "{name}: 503 without Retry-After");
        }
        // Credentials: a route that declares some answers 401 without them.
        let secured = op["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        });
        if secured {
            assert!(has(op, "401"), "{name}: secured but no 401");
        }
        // A body is required, can be malformed (400) and too large (413).
        if let Some(body) = op.get("requestBody") {
            assert_eq!(body["required"], true, "{name}: optional body");
            assert!(has(op, "400") && has(op, "413"), "{name}: body statuses");
        }
        // Query parameters with bounds say so: paging is whole numbers in range.
        for p in op["parameters"].as_array().into_iter().flatten() {
            let pname = p["name"].as_str().unwrap();
            if matches!(pname, "page" | "limit" | "historyPage" | "historyLimit") {
                assert_eq!(p["schema"]["type"], "integer", "{name} {pname}");
                assert_eq!(p["schema"]["minimum"], 1, "{name} {pname}");
                assert!(p["schema"]["maximum"].is_u64(), "{name} {pname}");
                assert!(p.get("allowEmptyValue").is_none(), "{name} {pname}");
            } else if p["in"] == "query" {
                assert_eq!(p["allowEmptyValue"], true, "{name} {pname}");
            }
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorEnvelope",
                    "{name} {status}"
                );
            }
            if status == "429" {
                assert!(retry_after(op, "429"), "{name}: 429 without Retry-After");
            }
        }
    }
    let op = |method: &str, path: &str| {
        ops.iter()
            .find(|(m, p, _)| m == method && p == path)
            .unwrap_or_else(|| panic!("{method} {path} is not documented"))
            .2
            .clone()
    };
    // Throttled routes answer 429 (with Retry-After, checked above).
    for (method, path) in [
        ("POST", "/partner-auth/login"),
        ("POST", "/auth/login"),
        ("POST", "/auth/register"),
        ("POST", "/auth/voucher/validate"),
        ("POST", "/app/events"),
        ("GET", "/partner/vouchers/export"),
        ("GET", "/partner/members/export"),
        ("GET", "/partner/billing/export"),
    ] {
        assert!(has(&op(method, path), "429"), "{method} {path}: no 429");
    }
    assert!(has(&op("POST", "/app/events"), "400"));
    for status in ["409", "410"] {
        assert!(has(&op("GET", "/partner/exports/{jobId}/download"), status));
    }
    assert!(has(&op("DELETE", "/partner/vouchers/{id}"), "409"));
    // Routes that cannot answer a status do not list it.
    assert!(!has(&op("GET", "/health"), "503"));
    assert!(!has(&op("GET", "/partner/dashboard"), "400"));
    assert!(!has(&op("POST", "/partner-auth/logout"), "401"));
    // The member token is its own scheme: a partner token does not work on /app/events.
    assert_eq!(
        op("POST", "/app/events")["security"],
        serde_json::json!([{"api_key": [], "member_bearer": []}])
    );
}

/// The documented `maximum` of `limit` on every list, and of `quantity`, is the server's: the
/// bound is accepted, one past it answers 400 naming the field.
#[tokio::test]
async fn documented_bounds_are_the_enforced_ones() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let p: Partner = app.partner().await;
    let auth = |req: RequestBuilder| key(bearer(req, &p.admin), &p.t.api_key);
    let mut lists = 0;
    for (method, path, op) in operations(&doc) {
        if method != "GET" || path.contains('{') {
            continue;
        }
        let Some(limit) = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["name"] == "limit")
        else {
            continue;
        };
        let max = limit["schema"]["maximum"].as_u64().unwrap();
        let r = app
            .send(auth(app.get(&format!("{path}?limit={max}"))))
            .await;
        r.assert_status(200);
        let r = app
            .send(auth(app.get(&format!("{path}?limit={}", max + 1))))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"][0]["field"], "limit", "{path}");
        lists += 1;
    }
    assert!(lists >= 8, "only {lists} lists have a limit");

    let schemas = &doc["components"]["schemas"];
    let generate = schemas
        .as_object()
        .unwrap()
        .iter()
        .find(|(name, _)| name.ends_with("GenerateRequest"))
        .map(|(_, s)| s.clone())
        .expect("GenerateRequest schema");
    let max = generate["properties"]["quantity"]["maximum"]
        .as_u64()
        .unwrap();
    assert_eq!(generate["additionalProperties"], false);
    let post = |body: Value| auth(app.post("/partner/vouchers")).json(&body);
    app.send(post(serde_json::json!({ "quantity": max })))
        .await
        .assert_status(201);
    let r = app
        .send(post(serde_json::json!({ "quantity": max + 1 })))
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"][0]["field"], "quantity");
    // JSON (and JSON Schema) do not tell 2 from 2.0.
    app.send(post(serde_json::json!({ "quantity": 2.0 })))
        .await
        .assert_status(201);
    app.send(post(serde_json::json!({ "quantity": 2.5 })))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

/// Postgres text cannot hold U+0000: stored text and text filters refuse it with a 400 naming the
/// field (not a generic database error), and the document says so with one pattern.
#[tokio::test]
async fn text_with_nul_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let schema = |suffix: &str| {
        doc["components"]["schemas"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(name, _)| name.ends_with(suffix))
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no schema {suffix}"))
    };
    use portal_api::doc::{NOT_BLANK, NO_NUL};
    for (s, field, pattern) in [
        ("ProductCreate", "name", NOT_BLANK),
        ("ProductUpdate", "name", NOT_BLANK),
        ("ProductCreate", "description", NO_NUL),
        ("ProductCreate", "productType", NO_NUL),
        ("RegisterRequest", "name", NOT_BLANK),
    ] {
        assert_eq!(
            schema(s)["properties"][field]["pattern"],
            pattern,
            "{s}.{field}"
        );
    }

    let p = app.partner().await;
    let auth = |req: RequestBuilder| key(bearer(req, &p.admin), &p.t.api_key);
    for (field, body) in [
        ("name", serde_json::json!({"name": "Shaker\u{0}"})),
        (
            "description",
            serde_json::json!({"name": "Shaker", "description": "a\u{0}b"}),
        ),
        (
            "productType",
            serde_json::json!({"name": "Shaker", "productType": "\u{0}"}),
        ),
    ] {
        let r = app
            .send(auth(app.post("/partner/products")).json(&body))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"][0]["field"], field, "{}", r.text);
    }
    for (path, field) in [
        ("/partner/members?search=a%00", "search"),
        ("/partner/vouchers?search=%00", "search"),
        ("/partner/products?productType=%00", "productType"),
        ("/partner/audit-log?action=%00", "action"),
        ("/classes?category=%00", "category"),
        ("/products?search=%00", "search"),
    ] {
        let r = app.send(auth(app.get(path))).await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"][0]["field"], field, "{path}");
    }
    app.send(auth(app.get("/classes/a%00")))
        .await
        .assert_error(404, "NOT_FOUND");
    let r = app
        .send(
            key(app.post("/auth/register"), &p.t.api_key).json(&serde_json::json!({
                "voucherCode": "NOPE-12345678", "email": "nul@example.com",
                "password": portal_tests::PASSWORD, "name": "Nul\u{0}",
            })),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"][0]["field"], "name");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM products WHERE client_id = $1",
            p.t.client_id
        )
        .await,
        0,
        "a refused product was stored"
    );
}
