//! The OpenAPI document is the contract: the router answers 405 with exactly the documented
//! methods, the document states the statuses every route can answer, and the bounds it states are
//! the ones the server enforces. (`scripts/schemathesis.sh` checks the whole document against a
//! running demo; these are the cheap guards that run with every `cargo test`.)

use portal_tests::TestApp;
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
