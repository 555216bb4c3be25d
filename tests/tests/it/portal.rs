//! The partner portal served by portal-api: client-side paths get the app, hashed assets are cached
//! for a year, every page carries the Content-Security-Policy, API paths are untouched; and the
//! portal's copy of the OpenAPI document (from which its types are generated) is the served one.

use portal_tests::TestApp;

/// A built portal in a temporary directory: index.html and one hashed asset.
fn built_portal() -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join("portal-tests")
        .join(format!("web-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Partner Portal</title><script type=module src=/assets/index-abc123.js></script>",
    )
    .unwrap();
    std::fs::write(dir.join("assets/index-abc123.js"), "console.log('portal')").unwrap();
    dir
}

#[tokio::test]
async fn client_side_paths_serve_the_app_and_api_paths_stay_json() {
    let dir = built_portal();
    let app = TestApp::spawn_with(|v| {
        v.insert("WEB_DIR".into(), dir.display().to_string());
    })
    .await;
    for path in [
        "/",
        "/members",
        "/members/0190c5d2-aaaa-7bbb-8ccc-123456789abc",
        "/vouchers",
        "/login",
    ] {
        let r = app.send(app.get(path)).await;
        r.assert_status(200);
        assert!(
            r.text.contains("<title>Partner Portal</title>"),
            "{path}: {}",
            r.text
        );
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
    }
    let r = app.send(app.get("/assets/index-abc123.js")).await;
    r.assert_status(200);
    assert_eq!(r.text, "console.log('portal')");
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(r.header("content-security-policy").is_some());
    // A missing asset is a 404, not the app.
    let r = app.send(app.get("/assets/index-gone.js")).await;
    assert_eq!(r.status, 404);
    assert!(!r.text.contains("Partner Portal"));
    // API paths, unknown or not, keep their JSON answers.
    app.send(app.get("/partner/nothing-here"))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(app.get("/partner/members"))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let r = app.send(app.get("/openapi.json")).await;
    r.assert_status(200);
    assert_eq!(r.body["info"]["title"], "Partner Portal API");
    let r = app.send(app.get("/health")).await;
    r.assert_status(200);
    assert!(r.header("content-security-policy").is_none());
}

#[tokio::test]
async fn without_a_built_portal_the_root_is_a_json_404() {
    let app = TestApp::spawn_with(|v| {
        v.insert("WEB_DIR".into(), "/nonexistent/portal".into());
    })
    .await;
    app.send(app.get("/members"))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// `web/openapi.json` is what `npm run gen:api` turns into the portal's types: it must be the
/// document the API serves, so portal and API cannot drift (`portal-api openapi > web/openapi.json`
/// refreshes it; `scripts/test.sh` then checks the generated types with `npm run check:api`).
#[test]
fn the_portals_copy_of_the_openapi_document_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/openapi.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let served: serde_json::Value = serde_json::from_str(
        &portal_api::openapi(&portal_api::api_router())
            .to_pretty_json()
            .unwrap(),
    )
    .unwrap();
    assert!(
        committed == served,
        "web/openapi.json is stale: run `target/debug/portal-api openapi > web/openapi.json` (the portal generates its types from it when it is built)"
    );
}
