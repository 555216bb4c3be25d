//! Billing report and asynchronous CSV exports.

use chrono::{Datelike, Duration, Utc};
use object_store::ObjectStoreExt;
use portal_shared::domain::ids::{MemberId, StaffId};
use portal_shared::pg::exports::ExportSpec;
use portal_shared::storage::Storage;
use portal_tests::{bearer, berlin, month_query, month_start, watch, TestApp, LANDED};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn billing_counts_members_active_in_the_month_of_the_clients_timezone() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let ann = app.member_id(&p, "ann@example.com", "Ann").await;
    let bob = app.member_id(&p, "bob@example.com", "Bob").await;
    app.member(&p, "cy@example.com", "Cy").await;
    let worker = app.worker().await;
    // Berlin (the test tenant's timezone). Month M = two months ago; its first local midnight:
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    let m_start = month_start(today, 2);
    let next_start = month_start(today, 1);
    // Ann: 00:30 local on the 1st of M (still the previous UTC day) and mid-month.
    app.push_batch(
        p.t.client_id,
        ann,
        vec![
            watch("yoga-1", berlin(m_start, 0, 30), 1200),
            watch("hiit-1", berlin(m_start + Duration::days(10), 18, 0), 630),
        ],
    )
    .await;
    // Bob: 23:30 local on the last day before M (previous month) and 00:10 on the 1st of M+1.
    app.push_batch(
        p.t.client_id,
        bob,
        vec![
            watch("yoga-1", berlin(m_start - Duration::days(1), 23, 30), 300),
            watch("yoga-2", berlin(next_start, 0, 10), 300),
        ],
    )
    .await;
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 4, 20).await, 4);
    let r = app.billing(&p.viewer, m_start).await;
    r.assert_status(200);
    let d = &r.body["data"];
    assert_eq!(d["activeMemberCount"], 1, "{}", r.text);
    assert_eq!(d["members"][0]["email"], "ann@example.com");
    assert_eq!(d["members"][0]["classesWatched"], 2);
    assert_eq!(
        d["members"][0]["watchTimeMinutes"], 31,
        "1830 s = 30.5 → 31"
    );
    assert_eq!(d["month"], m_start.month());
    assert_eq!(d["pagination"]["total"], 1);
    // The same month's analytics agree.
    let last = next_start.pred_opt().unwrap();
    let a = app
        .send(bearer(
            app.get(&format!(
                "/partner/analytics?startDate={m_start}&endDate={last}"
            )),
            &p.viewer,
        ))
        .await;
    assert_eq!(a.body["data"]["totals"]["activeMembers"], 1);
    assert_eq!(a.body["data"]["totals"]["classesWatched"], 2);
    assert_eq!(a.body["data"]["totals"]["watchTimeMinutes"], 31);
    // Month M+1: Bob only.
    let r = app.billing(&p.viewer, next_start).await;
    assert_eq!(r.body["data"]["members"][0]["email"], "bob@example.com");
    // Default: the current month (nobody); bad and future months are 400.
    let r = app
        .send(bearer(app.get("/partner/billing"), &p.viewer))
        .await;
    assert_eq!(r.body["data"]["month"], today.month());
    assert_eq!(r.body["data"]["activeMemberCount"], 0);
    let next = month_start(today, 0) + Duration::days(40);
    for q in [
        month_query(next),
        "month=13".into(),
        "month=0".into(),
        "month=x".into(),
        "year=1999".into(),
    ] {
        app.send(bearer(app.get(&format!("/partner/billing?{q}")), &p.viewer))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    worker.stop().await.unwrap();
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

#[tokio::test]
async fn members_export_lifecycle_and_content() {
    members_export_lifecycle(TestApp::spawn().await).await;
}

#[tokio::test]
async fn members_export_through_an_s3_compatible_store() {
    let app = TestApp::spawn_s3().await;
    assert!(app.vars["EXPORT_STORE"].starts_with("s3://"));
    assert!(!app.state.storage.prefix.is_empty());
    // Readiness covers the bucket.
    let r = app.send(app.get("/ready")).await;
    r.assert_status(200);
    assert_eq!(r.body["data"]["storage"], "ok");
    members_export_lifecycle(app).await;
}

/// Queued → running → completed, content row by row, download, 409/410/404, expiry removing the
/// file; the same for every store.
async fn members_export_lifecycle(app: TestApp) {
    let p = app.partner().await;
    app.member(
        &p,
        "ann@example.com",
        "=HYPERLINK(\"http://evil.example\",\"click\")",
    )
    .await;
    app.member(&p, "bob@example.com", "Bob, \"the\" builder")
        .await;
    sqlx::query("UPDATE members SET watch_seconds = 5430, class_views = 4, last_active_at = now() - interval '1 day', active_days = 2, favorite_category = 'Yoga' WHERE email = 'ann@example.com'")
        .execute(&app.db)
        .await
        .unwrap();
    // No worker yet: the job stays queued and cannot be downloaded.
    let r = app
        .send(bearer(app.get("/partner/members/export"), &p.viewer))
        .await;
    let job = r.accepted_job();
    assert_eq!(r.body["data"]["status"], "queued");
    assert_eq!(r.body["data"]["kind"], "members");
    assert_eq!(
        r.header("location"),
        Some(format!("/partner/exports/{job}").as_str())
    );
    assert_eq!(
        r.body["data"]["statusUrl"],
        format!("/partner/exports/{job}")
    );
    let s = app
        .send(bearer(
            app.get(&format!("/partner/exports/{job}")),
            &p.viewer,
        ))
        .await;
    assert_eq!(s.body["data"]["status"], "queued");
    app.download_export(&p.viewer, &job)
        .await
        .assert_error(409, "EXPORT_NOT_READY");
    // Another partner cannot see it.
    let q = app.partner().await;
    app.send(bearer(
        app.get(&format!("/partner/exports/{job}")),
        &q.admin,
    ))
    .await
    .assert_error(404, "NOT_FOUND");
    app.download_export(&q.admin, &job)
        .await
        .assert_error(404, "NOT_FOUND");
    // A worker takes it (running) but cannot read the members while a lock holds the table.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let worker = app.worker().await;
    let running = app
        .wait_export_status(&p.viewer, &job, &["running"], 20)
        .await;
    assert_eq!(running["status"], "running", "{running}");
    assert_eq!(running["rowsWritten"], 0);
    app.download_export(&p.viewer, &job)
        .await
        .assert_error(409, "EXPORT_NOT_READY");
    // Released: the worker builds it.
    lock.rollback().await.unwrap();
    let done = app.wait_export(&p.viewer, &job, 20).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rowsWritten"], 2);
    assert_eq!(done["rowsTotal"], 2);
    assert_eq!(
        done["downloadUrl"],
        format!("/partner/exports/{job}/download")
    );
    assert!(done["expiresAt"].is_string());
    let r = app.download_export(&p.viewer, &job).await;
    r.assert_status(200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"members-{today}.csv\"").as_str())
    );
    let rows = parse_csv(&r.text);
    assert_eq!(rows[0][..4], ["id", "name", "email", "status"]);
    assert_eq!(rows.len(), 3);
    // Row by row against the database.
    let db: Vec<(Uuid, String, String, chrono::DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "SELECT id, name, email, registered_at, watch_seconds, class_views FROM members WHERE client_id = $1 ORDER BY registered_at, id",
    )
    .bind(p.t.client_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    for (row, (id, name, email, registered, secs, views)) in rows[1..].iter().zip(&db) {
        assert_eq!(row[0], id.to_string());
        let expected_name = if name.starts_with('=') {
            format!("'{name}")
        } else {
            name.clone()
        };
        assert_eq!(row[1], expected_name);
        assert_eq!(&row[2], email);
        let reg = chrono::DateTime::parse_from_rfc3339(&row[5]).unwrap();
        assert_eq!(reg.with_timezone(&Utc).timestamp(), registered.timestamp());
        assert!(
            row[5].ends_with("+01:00") || row[5].ends_with("+02:00"),
            "Berlin offset: {}",
            row[5]
        );
        assert_eq!(row[8], ((secs + 30) / 60).to_string());
        assert_eq!(row[9], views.to_string());
    }
    assert_eq!(rows[1][1], "'=HYPERLINK(\"http://evil.example\",\"click\")");
    assert!(
        r.text.contains("\"Bob, \"\"the\"\" builder\""),
        "RFC 4180 quoting: {}",
        r.text
    );
    // The file is in the store under the job's key (and the store's prefix), whole.
    let key: String = sqlx::query_scalar("SELECT storage_key FROM export_jobs WHERE id = $1")
        .bind(Uuid::parse_str(&job).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let storage = &app.state.storage;
    assert!(key.starts_with(&storage.prefix), "{key}");
    assert!(
        key.ends_with(&format!("{}/{job}.csv", p.t.client_id)),
        "{key}"
    );
    let object = Storage::path(&key);
    let meta = storage.store.head(&object).await.unwrap();
    assert_eq!(meta.size, r.text.len() as u64);
    // Listed, then expired: 410.
    let l = app
        .send(bearer(app.get("/partner/exports"), &p.viewer))
        .await;
    assert_eq!(l.body["data"]["exports"][0]["jobId"], job.as_str());
    sqlx::query("UPDATE export_jobs SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(Uuid::parse_str(&job).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    app.download_export(&p.viewer, &job)
        .await
        .assert_error(410, "GONE");
    // Housekeeping removes the expired file.
    let (files, _) = portal_shared::jobs::exports::cleanup(&app.db, &app.state.storage)
        .await
        .unwrap();
    assert_eq!(files, 1);
    assert!(
        matches!(
            storage.store.head(&object).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "the expired file is gone"
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn vouchers_and_billing_exports() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    app.vouchers(&p, 3, Some("EXP")).await;
    let m = app.member_id(&p, "payer@example.com", "Payer").await;
    let worker = app.worker().await;
    app.push_batch(
        p.t.client_id,
        m,
        vec![watch("yoga-1", Utc::now() - Duration::minutes(5), 90)],
    )
    .await;
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 1, 20).await, 1);
    // Vouchers: the key of the staff member's client is required, like every voucher route.
    app.send(bearer(app.get("/partner/vouchers/export"), &p.admin))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let r = app
        .send(app.as_admin(&p, app.get("/partner/vouchers/export?status=active")))
        .await;
    let job = r.accepted_job();
    let done = app.wait_export(&p.admin, &job, 20).await;
    assert_eq!(done["rowsWritten"], 3, "{done}");
    let csv = app.download_export(&p.admin, &job).await;
    let rows = parse_csv(&csv.text);
    assert_eq!(rows.len(), 4);
    assert!(rows[1..]
        .iter()
        .all(|r| r[1].starts_with("EXP-") && r[2] == "active"));
    app.send(app.as_admin(&p, app.get("/partner/vouchers/export?status=bogus")))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // A parameter given twice is refused, whichever of its values is valid, and starts no job.
    const JOBS: &str = "SELECT count(*) FROM export_jobs WHERE client_id = $1";
    let jobs = app.count(JOBS, p.t.client_id).await;
    for query in ["status=&status=bogus", "status=active&status=revoked"] {
        let r = app
            .send(app.as_admin(&p, app.get(&format!("/partner/vouchers/export?{query}"))))
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            r.body["error"]["details"][0]["field"], "status",
            "{}",
            r.body
        );
    }
    assert_eq!(app.count(JOBS, p.t.client_id).await, jobs);
    // Billing of this month.
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    let job = app.billing_export(&p.admin, today).await.accepted_job();
    let done = app.wait_export(&p.admin, &job, 20).await;
    assert_eq!(done["status"], "completed", "{done}");
    let csv = app.download_export(&p.admin, &job).await;
    assert_eq!(
        csv.header("content-disposition"),
        Some(
            format!(
                "attachment; filename=\"billing-{}-{:02}.csv\"",
                today.year(),
                today.month()
            )
            .as_str()
        )
    );
    let rows = parse_csv(&csv.text);
    assert_eq!(
        rows[0],
        [
            "id",
            "name",
            "email",
            "registeredAt",
            "watchTimeMinutes",
            "classesWatched",
            "firstActiveAt",
            "lastActiveAt"
        ]
    );
    assert_eq!(rows[1][2], "payer@example.com");
    assert_eq!(rows[1][4], "2");
    assert_eq!(rows[1][5], "1");
    app.send(bearer(
        app.get("/partner/billing/export?month=13"),
        &p.admin,
    ))
    .await
    .assert_error(400, "VALIDATION_ERROR");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_export_that_cannot_succeed_fails_readably_and_an_interrupted_one_is_redone() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    app.member(&p, "x@example.com", "X").await;
    let staff_id: StaffId = sqlx::query_scalar("SELECT id FROM staff WHERE email = $1")
        .bind(&p.t.admin_email)
        .fetch_one(&app.db)
        .await
        .unwrap();
    // A billing job whose stored month is gone (a row the product would not write): it can
    // never succeed.
    let bad = portal_shared::pg::exports::create(
        &app.db,
        p.t.client_id,
        staff_id,
        ExportSpec::Billing {
            month: portal_shared::domain::month::Month {
                year: 2026,
                month: 1,
            },
        },
        "billing-x.csv",
    )
    .await
    .unwrap();
    sqlx::query("UPDATE export_jobs SET params = '{}' WHERE id = $1")
        .bind(bad.id)
        .execute(&app.db)
        .await
        .unwrap();
    // A members job whose previous worker died mid-way (running, a partial file).
    let half = portal_shared::pg::exports::create(
        &app.db,
        p.t.client_id,
        staff_id,
        ExportSpec::Members,
        "members-x.csv",
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE export_jobs SET status = 'running', attempts = 1, rows_written = 1 WHERE id = $1",
    )
    .bind(half.id)
    .execute(&app.db)
    .await
    .unwrap();
    let q = &app.state.exports;
    q.enqueue(portal_shared::jobs::exports::ExportJob { job_id: bad.id })
        .await
        .unwrap();
    q.enqueue(portal_shared::jobs::exports::ExportJob { job_id: half.id })
        .await
        .unwrap();
    let worker = app.worker().await;
    let failed = app.wait_export(&p.admin, &bad.id.to_string(), 40).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], "a billing export needs a month and a year");
    app.download_export(&p.admin, &bad.id.to_string())
        .await
        .assert_error(409, "EXPORT_NOT_READY");
    let redone = app.wait_export(&p.admin, &half.id.to_string(), 20).await;
    assert_eq!(redone["status"], "completed", "{redone}");
    assert_eq!(redone["rowsWritten"], 1);
    let csv = app.download_export(&p.admin, &half.id.to_string()).await;
    assert_eq!(parse_csv(&csv.text).len(), 2);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn an_export_asked_for_while_redis_is_down_answers_503_and_is_marked_failed() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let (down, proxy) = app.sibling_behind_redis_proxy().await;
    proxy.cut();
    let r = down
        .send(bearer(down.get("/partner/members/export"), &p.admin))
        .await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert!(r.header("retry-after").is_some());
    // The row written before the push says what happened; nothing waits on it.
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM export_jobs WHERE client_id = $1")
            .bind(p.t.client_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some("the job queue was unreachable; start the export again")
    );
    // Back up: a new request is accepted.
    proxy.restore();
    let status = down
        .send_until(202, 4, || {
            bearer(down.get("/partner/members/export"), &p.admin)
        })
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_client_has_at_most_three_exports_queued_or_running_even_when_asking_in_parallel() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let q = app.partner().await;
    // No worker: every accepted export stays queued. Eight requests at once.
    let answers = futures::future::join_all(
        (0..8).map(|_| app.send(bearer(app.get("/partner/members/export"), &p.admin))),
    )
    .await;
    let accepted = answers.iter().filter(|r| r.status == 202).count();
    assert_eq!(accepted, 3, "three accepted");
    for r in answers.iter().filter(|r| r.status != 202) {
        r.assert_error(429, "RATE_LIMITED");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1, "{retry}");
    }
    let rows = app
        .count(
            "SELECT count(*) FROM export_jobs WHERE client_id = $1",
            p.t.client_id,
        )
        .await;
    assert_eq!(rows, 3, "the refused requests created no job");
    // Every export kind counts against the same three.
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive();
    app.billing_export(&p.admin, today)
        .await
        .assert_error(429, "RATE_LIMITED");
    app.send(app.as_admin(&p, app.get("/partner/vouchers/export")))
        .await
        .assert_error(429, "RATE_LIMITED");
    // Another client is not affected.
    app.send(bearer(app.get("/partner/members/export"), &q.admin))
        .await
        .assert_status(202);
    // Once one of the three is finished (completed or failed), the client may ask again.
    sqlx::query(
        "UPDATE export_jobs SET status = 'failed', completed_at = now()
         WHERE id = (SELECT id FROM export_jobs WHERE client_id = $1 ORDER BY created_at LIMIT 1)",
    )
    .bind(p.t.client_id)
    .execute(&app.db)
    .await
    .unwrap();
    app.send(app.as_admin(&p, app.get("/partner/vouchers/export")))
        .await
        .assert_status(202);
    app.send(bearer(app.get("/partner/members/export"), &p.admin))
        .await
        .assert_error(429, "RATE_LIMITED");
    // The OpenAPI document says so.
    let doc = app.send(app.get("/openapi.json")).await;
    for path in [
        "/partner/members/export",
        "/partner/vouchers/export",
        "/partner/billing/export",
    ] {
        assert!(
            doc.body["paths"][path]["get"]["responses"]["429"].is_object(),
            "{path} documents 429"
        );
    }
}

#[tokio::test]
async fn another_clients_export_completes_while_one_clients_backlog_waits() {
    let app = TestApp::spawn().await;
    let a = app.partner().await;
    let b = app.partner().await;
    app.member(&b, "b@example.com", "B").await;
    // A's three exports are queued first, then B's one.
    let mut backlog = Vec::new();
    for _ in 0..3 {
        let r = app
            .send(bearer(app.get("/partner/members/export"), &a.admin))
            .await;
        backlog.push(r.accepted_job());
    }
    let r = app
        .send(bearer(app.get("/partner/members/export"), &b.admin))
        .await;
    let b_job = r.accepted_job();
    // Every one of A's jobs is held: a worker that starts one waits on its row.
    let mut hold = app.db.begin().await.unwrap();
    let ids: Vec<Uuid> = backlog
        .iter()
        .map(|j| Uuid::parse_str(j).unwrap())
        .collect();
    sqlx::query("SELECT id FROM export_jobs WHERE id = ANY($1) FOR UPDATE")
        .bind(&ids)
        .fetch_all(&mut *hold)
        .await
        .unwrap();
    let worker = app.worker().await;
    // B's export is built although A's jobs were queued before it and the worker has two slots.
    let done = app.wait_export(&b.admin, &b_job, 20).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rowsWritten"], 1);
    // The worker started one of A's (it waits on the held row); the others wait their turn.
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(waiting, 1, "one of A's exports at a time");
    for job in &backlog {
        let s = app
            .send(bearer(
                app.get(&format!("/partner/exports/{job}")),
                &a.admin,
            ))
            .await;
        assert_eq!(s.body["data"]["status"], "queued", "{}", s.text);
    }
    // Released: A's backlog is built, one after another.
    hold.rollback().await.unwrap();
    for job in &backlog {
        let done = app.wait_export(&a.admin, job, 30).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn billing_pages_follow_the_name_order_across_pages() {
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let worker = app.worker().await;
    let now = Utc::now() - Duration::minutes(2);
    let month = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    // Seven billable members (two named alike, mixed case, one accented) and two who are not.
    let names = ["bea", "Anna", "carl", "Émile", "anna", "Zoë", "dave"];
    let mut billable: Vec<(String, MemberId, u32)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let id = app.member_id(&p, &format!("m{i}@example.com"), name).await;
        let seconds = 60 * (i as u32 + 1);
        app.push_batch(p.t.client_id, id, vec![watch("yoga-1", now, seconds)])
            .await;
        billable.push((name.to_string(), id, seconds));
    }
    // Aaron never watched; Abe watched 40 days before.
    app.member(&p, "idle@example.com", "Aaron").await;
    let earlier = app.member_id(&p, "earlier@example.com", "Abe").await;
    app.push_batch(
        p.t.client_id,
        earlier,
        vec![watch("yoga-1", now - Duration::days(40), 60)],
    )
    .await;
    assert_eq!(app.wait_for_count(LANDED, p.t.client_id, 8, 20).await, 8);
    // Name (case-insensitive), then id.
    billable.sort_by_key(|(name, id, _)| (name.to_lowercase(), *id));
    let mut seen = Vec::new();
    for page in 1..=4 {
        let r = app
            .send(bearer(
                app.get(&format!(
                    "/partner/billing?{}&limit=3&page={page}",
                    month_query(month)
                )),
                &p.viewer,
            ))
            .await;
        r.assert_status(200);
        let d = &r.body["data"];
        assert_eq!(d["activeMemberCount"], 7, "{}", r.text);
        assert_eq!(
            d["pagination"],
            json!({"page": page, "limit": 3, "total": 7, "totalPages": 3})
        );
        let members = d["members"].as_array().unwrap();
        assert_eq!(members.len(), [3, 3, 1, 0][page as usize - 1], "{}", r.text);
        for m in members {
            seen.push((
                m["name"].as_str().unwrap().to_string(),
                m["id"].as_str().unwrap().parse::<MemberId>().unwrap(),
                m["watchTimeMinutes"].as_i64().unwrap(),
                m["classesWatched"].as_i64().unwrap(),
            ));
        }
    }
    let expected: Vec<(String, MemberId, i64, i64)> = billable
        .iter()
        .map(|(n, id, s)| (n.clone(), *id, i64::from(*s) / 60, 1))
        .collect();
    assert_eq!(seen, expected);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_billing_export_lists_every_billable_member_in_report_order_across_chunks() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    // 2,345 members (more than two chunks of figures), 2,300 of them billable this month.
    let ids: Vec<MemberId> = sqlx::query_scalar(
        "INSERT INTO members (id, client_id, email, name, password_hash)
         SELECT gen_random_uuid(), $1, 'm' || g || '@example.com',
                CASE WHEN g % 3 = 0 THEN 'member ' ELSE 'Member ' END || (g * 7919 % 2345), 'x'
         FROM generate_series(1, 2345) g RETURNING id",
    )
    .bind(p.t.client_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let now = Utc::now() - Duration::minutes(5);
    let month = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();
    app.insert_ch_events(ids.iter().enumerate().skip(45).flat_map(|(i, id)| {
        (0..(1 + i % 2)).map(|_| portal_shared::pipeline::ChEvent {
            client_id: p.t.client_id,
            event_id: Uuid::new_v4(),
            member_id: *id,
            class_id: "yoga-1".into(),
            category: "Yoga".into(),
            started_at: now,
            local_date: month,
            watched_seconds: 90,
            received_at: now,
        })
    }))
    .await;
    let worker = app.worker().await;
    let job = app.billing_export(&p.admin, month).await.accepted_job();
    let done = app.wait_export(&p.admin, &job, 60).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rowsTotal"], 2300);
    assert_eq!(done["rowsWritten"], 2300);
    let rows = parse_csv(&app.download_export(&p.admin, &job).await.text);
    assert_eq!(rows.len(), 2301);
    // Name regardless of case, then id; one or two 90-second views each.
    let mut expected: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, id::text FROM members WHERE client_id = $1 AND NOT (id = ANY($2))",
    )
    .bind(p.t.client_id)
    .bind(&ids[..45])
    .fetch_all(&app.db)
    .await
    .unwrap();
    expected.sort_by_key(|(name, id)| (name.to_lowercase(), Uuid::parse_str(id).unwrap()));
    let got: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[1].clone(), r[0].clone()))
        .collect();
    assert_eq!(got, expected);
    let views: std::collections::HashMap<MemberId, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, 1 + i % 2))
        .collect();
    for r in &rows[1..] {
        let n = views[&r[0].parse::<MemberId>().unwrap()];
        assert_eq!(r[5], n.to_string(), "classesWatched of {}", r[0]);
        assert_eq!(
            r[4],
            ((90 * n + 30) / 60).to_string(),
            "minutes of {}",
            r[0]
        );
    }
    worker.stop().await.unwrap();
}
