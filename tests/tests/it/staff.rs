//! Staff deactivation and role changes (`portal-admin staff deactivate|set-role`) reach every API
//! instance at once, not after the staff cache's 10 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portal_shared::pg::staff;
use portal_tests::{bearer, binary, TestApp, PASSWORD};
use salvo::test::{RequestBuilder, ResponseExt};
use salvo::Service;
use serde_json::{json, Value};

/// A second API instance (caches and announcement listener of its own) on the same databases and
/// Redis namespace as `app`.
pub(crate) struct Instance {
    pub(crate) service: Arc<Service>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

pub(crate) async fn instance(app: &TestApp) -> Instance {
    let state = portal_api::AppState::new(app.config()).await.unwrap();
    let watcher = tokio::spawn(portal_api::watch_announcements(state.clone()));
    Instance {
        service: Arc::new(portal_api::service(state)),
        watcher,
    }
}

/// Status and error code of a request to one instance.
pub(crate) async fn call(service: &Service, req: RequestBuilder) -> (u16, String) {
    let mut res = req.send(service).await;
    let body: Value =
        serde_json::from_str(&res.take_string().await.unwrap_or_default()).unwrap_or(Value::Null);
    (
        res.status_code.map(|s| s.as_u16()).unwrap_or(200),
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// Runs the real `portal-admin` binary (built beside this test binary) with the app's settings.
pub(crate) async fn admin(app: &TestApp, args: &[&str]) -> (i32, Value, String) {
    let out = tokio::process::Command::new(binary("portal-admin"))
        .env_clear()
        .envs(app.vars.iter())
        .current_dir(std::env::temp_dir())
        .arg("--json")
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `req` on every instance until each answers `want`; returns how long that took.
pub(crate) async fn until_all(
    services: &[&Service],
    req: impl Fn() -> RequestBuilder,
    want: u16,
) -> Duration {
    let started = Instant::now();
    for service in services {
        loop {
            let (status, _) = call(service, req()).await;
            if status == want {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still {status} instead of {want} after {:?}",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    started.elapsed()
}

/// Checks every instance serves both `read` and `write` (the staff member is cached as an admin).
pub(crate) async fn assert_serves(
    services: &[&Service],
    read: impl Fn() -> RequestBuilder,
    write: impl Fn() -> RequestBuilder,
) {
    for service in services {
        assert_eq!(call(service, read()).await.0, 200);
        assert_eq!(call(service, write()).await.0, 200);
    }
}

/// Demotion: waits until every instance refuses `write` (within 3 s) and checks each still
/// serves `read`.
pub(crate) async fn assert_demoted(
    services: &[&Service],
    read: impl Fn() -> RequestBuilder,
    write: impl Fn() -> RequestBuilder,
) {
    let took = until_all(services, &write, 403).await;
    assert!(took < Duration::from_secs(3), "demotion took {took:?}");
    for service in services {
        assert_eq!(call(service, write()).await, (403, "FORBIDDEN".into()));
        assert_eq!(call(service, read()).await.0, 200, "a viewer still reads");
    }
}

/// Deactivation: waits until every instance refuses `read` (within 3 s), then checks that the
/// session of `refresh` is over and `email` can no longer log in.
pub(crate) async fn assert_locked_out(
    app: &TestApp,
    services: &[&Service],
    read: impl Fn() -> RequestBuilder,
    refresh: &str,
    email: &str,
) {
    let took = until_all(services, &read, 401).await;
    assert!(took < Duration::from_secs(3), "deactivation took {took:?}");
    for service in services {
        assert_eq!(call(service, read()).await, (401, "UNAUTHORIZED".into()));
    }
    app.send(
        app.post("/partner-auth/refresh")
            .json(&json!({ "refreshToken": refresh })),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.login(email, PASSWORD)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[tokio::test]
async fn demotion_and_deactivation_apply_at_once_on_every_instance() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let (access, refresh) = app.tokens(&p.t.admin_email).await;
    let id = portal_shared::pg::unscoped::staff_for_login(&app.db, &p.t.admin_email)
        .await
        .unwrap()
        .unwrap()
        .id;
    let second = instance(&app).await;
    let services = [&*app.service, &*second.service];
    // Both instances listen for announcements.
    let channel = staff::change_channel(&app.namespace);
    app.wait_listeners(&channel, 2).await;
    let read = || bearer(app.get("/partner/members"), &access);
    let write =
        || bearer(app.put("/partner/strings"), &access).json(&json!({"st_note": "<p>x</p>"}));
    // Both instances have the admin cached as an active admin.
    assert_serves(&services, read, write).await;

    let (code, out, err) = admin(
        &app,
        &["staff", "set-role", &p.t.admin_email, "--role", "viewer"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["role"], "viewer");
    assert_eq!(out["previousRole"], "admin");
    assert!(err.contains("no active admin left"), "{err}");
    assert_demoted(&services, read, write).await;

    let (code, out, err) = admin(&app, &["staff", "deactivate", &id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out["active"], false);
    // Two logins: the one of `partner()` and the one above.
    assert_eq!(out["sessionsRevoked"], 2);
    // No way back in: the session is revoked and the login refused.
    assert_locked_out(&app, &services, read, &refresh, &p.t.admin_email).await;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE staff_id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(live, 0);
    // The viewer of the same client is untouched.
    for service in services {
        assert_eq!(
            call(service, bearer(app.get("/partner/members"), &p.viewer))
                .await
                .0,
            200
        );
    }
    // Both changes are in the client's audit log.
    let audited: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT action, actor_type, details FROM audit_log
         WHERE client_id = $1 AND target_type = 'staff' AND target_id = $2 ORDER BY id",
    )
    .bind(p.t.client_id)
    .bind(id.to_string())
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert_eq!(audited[0].0, "staff.set_role");
    assert_eq!(audited[0].2["from"], "admin");
    assert_eq!(audited[0].2["to"], "viewer");
    assert_eq!(audited[1].0, "staff.deactivate");
    assert_eq!(audited[1].1, "system");
    assert_eq!(audited[1].2["sessionsRevoked"], 2);
}

#[tokio::test]
async fn bad_staff_changes_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    for (args, want) in [
        (
            vec![
                "staff",
                "set-role",
                p.t.admin_email.as_str(),
                "--role",
                "owner",
            ],
            "VALIDATION_ERROR",
        ),
        (
            vec!["staff", "deactivate", "nobody@nowhere.example"],
            "NOT_FOUND",
        ),
        (
            vec![
                "staff",
                "deactivate",
                "0190b3f0-0000-7000-8000-000000000000",
            ],
            "NOT_FOUND",
        ),
        (vec!["staff", "deactivate", "not-an-id"], "VALIDATION_ERROR"),
    ] {
        let (code, out, err) = admin(&app, &args).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(out["error"]["code"], want, "{args:?}: {out}");
    }
    let s = portal_shared::pg::unscoped::staff_for_login(&app.db, &p.t.admin_email)
        .await
        .unwrap()
        .unwrap();
    assert!(s.active);
    assert_eq!(s.role, portal_shared::domain::auth::Role::Admin);
    let audited = app
        .count(
            "SELECT count(*) FROM audit_log WHERE client_id = $1 AND action LIKE 'staff.%'",
            p.t.client_id,
        )
        .await;
    assert_eq!(audited, 0);
    app.send(bearer(app.put("/partner/strings"), &p.admin).json(&json!({"st_a": "b"})))
        .await
        .assert_status(200);
}
