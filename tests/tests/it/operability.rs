//! Health, readiness, metrics, OpenAPI, error envelope, request ids.

use portal_tests::{key, s3_vars, TestApp};

#[tokio::test]
async fn health_and_ready_when_everything_runs() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/health")).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["status"], "ok");
    let r = app.send(app.get("/ready")).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["clickhouse"], "ok");
    assert_eq!(r.body["data"]["storage"], "ok");
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn ready_reports_a_missing_export_bucket_without_failing() {
    let app = TestApp::spawn_with(|v| {
        s3_vars(v);
        v.insert(
            "EXPORT_STORE".into(),
            format!(
                "s3://no-such-bucket-{}/exports",
                uuid::Uuid::new_v4().simple()
            ),
        );
    })
    .await;
    let r = app.send(app.get("/ready")).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["storage"], "unavailable");
    assert_eq!(r.body["data"]["postgres"], "ok");
    // The same store with its bucket answers.
    let ok = TestApp::spawn_s3().await;
    let r = ok.send(ok.get("/ready")).await;
    assert_eq!(r.body["data"]["storage"], "ok");
}

#[tokio::test]
async fn ready_names_a_stopped_clickhouse() {
    let app = TestApp::spawn_with(|v| {
        v.insert("CLICKHOUSE_URL".into(), "http://127.0.0.1:1".into());
    })
    .await;
    let r = app.send(app.get("/ready")).await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("clickhouse"), "{msg}");
    assert!(!msg.contains("postgres") && !msg.contains("redis"), "{msg}");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn ready_names_a_stopped_redis() {
    let app = TestApp::spawn_with(|v| {
        v.insert("REDIS_URL".into(), "redis://127.0.0.1:1".into());
    })
    .await;
    let started = std::time::Instant::now();
    let r = app.send(app.get("/ready")).await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("redis") && !msg.contains("clickhouse"),
        "{msg}"
    );
    assert!(
        started.elapsed().as_secs() < 5,
        "readiness must answer quickly"
    );
    // Login depends on Redis (throttling): it answers 503, not 500, and not a login.
    let t = app.tenant().await;
    let r = app.login(&t.admin_email, portal_tests::PASSWORD).await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn ready_names_a_stopped_postgres() {
    let app = TestApp::spawn_with(|v| {
        v.insert(
            "DATABASE_URL".into(),
            "postgres://portal:portal@127.0.0.1:1/portal".into(),
        );
        // Nothing to migrate against: point ClickHouse away too, so the harness skips it.
        v.insert("CLICKHOUSE_URL".into(), "http://127.0.0.1:1".into());
    })
    .await;
    let r = app.send(app.get("/ready")).await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("postgres"), "{msg}");
    // Requests that need Postgres answer 503 in the envelope.
    let r = app.login("someone@example.com", "password-1").await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn metrics_are_exposed_for_prometheus() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    app.send(key(app.get("/classes"), &t.api_key))
        .await
        .assert_status(200);
    let r = app.send(app.get("/metrics")).await;
    r.assert_status(200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.text.contains("portal_http_requests_total"), "{}", r.text);
    assert!(r.text.contains("route=\"/classes\""), "{}", r.text);
    assert!(r.text.contains("portal_queue_depth"), "{}", r.text);
}

#[tokio::test]
async fn openapi_document_describes_the_api() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/openapi.json")).await;
    r.assert_status(200);
    let paths = r.body["paths"].as_object().expect("paths");
    for p in [
        "/partner-auth/login",
        "/partner-auth/refresh",
        "/partner-auth/logout",
        "/partner-auth/me",
        "/partner/vouchers/stats",
        "/partner/strings",
        "/classes",
        "/classes/{id}",
        "/app/strings",
        "/partner/vouchers",
        "/partner/vouchers/{id}",
        "/partner/members",
        "/partner/members/{id}",
        "/partner/products",
        "/partner/products/{id}",
        "/partner/audit-log",
        "/auth/voucher/validate",
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/products",
        "/products/{id}",
        "/products/types",
        "/health",
        "/ready",
    ] {
        assert!(paths.contains_key(p), "missing {p}");
    }
    // Write endpoints document their request bodies, every operation its 200/201 response.
    for (path, method) in [
        ("/partner/vouchers", "post"),
        ("/partner/products", "post"),
        ("/partner/products/{id}", "put"),
        ("/partner/strings", "put"),
        ("/auth/register", "post"),
        ("/partner-auth/login", "post"),
    ] {
        let op = &r.body["paths"][path][method];
        assert!(
            op["requestBody"]["content"]["application/json"]["schema"].is_object(),
            "{method} {path} body"
        );
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path} documents no success response"
            );
        }
    }
    let text = r.text.as_str();
    assert!(
        text.contains("STUDIO-7K3M9Q2X") && text.contains("Protein Powder"),
        "examples"
    );
    let schemes = &r.body["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    let docs = app.send(app.get("/docs/")).await;
    docs.assert_status(200);
    assert!(docs.text.to_lowercase().contains("swagger"));
}

#[tokio::test]
async fn framework_errors_use_the_envelope() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/no/such/route")).await;
    r.assert_error(404, "NOT_FOUND");
    assert!(r.header("x-request-id").is_some());
    let r = app.send(app.delete("/partner-auth/login")).await;
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    let r = app
        .send(app.post("/partner-auth/login").text("email=a&password=b"))
        .await;
    assert!(r.status == 400 || r.status == 415, "{}", r.text);
    assert_eq!(r.body["success"], false);
    let big = "x".repeat(9 * 1024 * 1024);
    let r = app
        .send(
            app.post("/partner-auth/login")
                .raw_json(format!("{{\"email\":\"{big}\"}}")),
        )
        .await;
    r.assert_error(413, "PAYLOAD_TOO_LARGE");
    // Classes: bad paging is a 400 naming the field; unknown ids are 404.
    let t = app.tenant().await;
    let r = app
        .send(key(app.get("/classes?page=0&limit=1000"), &t.api_key))
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let fields = r.error_fields();
    assert_eq!(fields, vec!["page", "limit"]);
    app.send(key(app.get("/classes/nope"), &t.api_key))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn classes_are_listed_and_filtered() {
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let csv = "id,title,category,instructor,durationMinutes\nyoga-1,Flow,Yoga,Ana,30\nyoga-2,Calm,Yoga,Ana,20\nhiit-1,Burn,HIIT,Bo,25\n";
    let n = portal_shared::pg::classes::import_csv(&app.db, csv.as_bytes())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let r = app
        .send(key(app.get("/classes?category=yoga&limit=1"), &t.api_key))
        .await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["pagination"]["total"], 2);
    assert_eq!(r.body["data"]["pagination"]["totalPages"], 2);
    assert_eq!(r.body["data"]["classes"].as_array().unwrap().len(), 1);
    let r = app
        .send(key(app.get("/classes?sort=-durationMinutes"), &t.api_key))
        .await;
    let ids: Vec<&str> = r.body["data"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["yoga-1", "hiit-1", "yoga-2"]);
    app.send(key(app.get("/classes?sort=instructor"), &t.api_key))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let r = app.send(key(app.get("/classes/hiit-1"), &t.api_key)).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["durationMinutes"], 25);
    // Importing again updates in place.
    let csv2 = "id,title,category,instructor,durationMinutes\nhiit-1,Burn Harder,HIIT,Bo,35\n";
    portal_shared::pg::classes::import_csv(&app.db, csv2.as_bytes())
        .await
        .unwrap();
    let r = app.send(key(app.get("/classes/hiit-1"), &t.api_key)).await;
    assert_eq!(r.body["data"]["title"], "Burn Harder");
}
