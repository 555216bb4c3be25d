//! The partner's member list and detail.

use portal_tests::{bearer, TestApp};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn members_are_listed_with_activity_from_the_summary() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let (ann, _) = app.member(&p, "ann@example.com", "Ann Archer").await;
    let (bob, _) = app.member(&p, "bob@example.com", "Bob Baker").await;
    app.member(&p, "cy@example.com", "Cy Young").await;
    // What the event pipeline writes: Ann watched recently, Bob long ago.
    sqlx::query("UPDATE members SET watch_seconds = 5430, class_views = 4, last_active_at = now() - interval '2 days', first_active_at = now() - interval '40 days', active_days = 3, favorite_category = 'Yoga' WHERE id = $1")
        .bind(Uuid::parse_str(&ann).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE members SET watch_seconds = 89, class_views = 1, last_active_at = now() - interval '45 days' WHERE id = $1")
        .bind(Uuid::parse_str(&bob).unwrap())
        .execute(&app.db)
        .await
        .unwrap();
    let list = |q: &str| app.send(bearer(app.get(&format!("/partner/members{q}")), &p.viewer));
    let r = list("?sort=name").await;
    r.assert_status(200);
    let rows = r.body["data"]["members"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["name"], "Ann Archer");
    assert_eq!(rows[0]["status"], "active");
    assert_eq!(
        rows[0]["totalWatchTimeMinutes"], 91,
        "5430 s = 90.5 min rounds half up"
    );
    assert_eq!(rows[0]["classesWatched"], 4);
    assert!(rows[0]["voucherCode"].is_string());
    assert_eq!(rows[1]["status"], "inactive");
    assert_eq!(rows[1]["totalWatchTimeMinutes"], 1);
    assert_eq!(rows[2]["lastActiveAt"], serde_json::Value::Null);
    let names = |r: &portal_tests::Resp| -> Vec<String> {
        r.body["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&list("?status=active").await), vec!["Ann Archer"]);
    assert_eq!(
        names(&list("?status=inactive&sort=-name").await),
        vec!["Cy Young", "Bob Baker"]
    );
    assert_eq!(names(&list("?search=BAKER").await), vec!["Bob Baker"]);
    assert_eq!(names(&list("?search=cy%40example").await), vec!["Cy Young"]);
    assert_eq!(
        names(&list("?sort=-watchTime&limit=1").await),
        vec!["Ann Archer"]
    );
    let r = list("?limit=2&page=2&sort=email").await;
    assert_eq!(
        r.body["data"]["pagination"],
        json!({"page": 2, "limit": 2, "total": 3, "totalPages": 2})
    );
    // A searched page counts every match, on the page, past its end and with none.
    let r = list("?search=example&limit=2&page=2&sort=name").await;
    assert_eq!(names(&r), vec!["Cy Young"]);
    assert_eq!(r.body["data"]["pagination"]["total"], 3);
    let r = list("?search=example&limit=2&page=3").await;
    assert_eq!(names(&r), Vec::<String>::new());
    assert_eq!(r.body["data"]["pagination"]["total"], 3);
    let r = list("?search=nobody-at-all").await;
    assert_eq!(r.body["data"]["pagination"]["total"], 0);
    // The index joins name and email with a newline; a text spanning the two matches neither.
    let r = list("?search=archer%0Aann").await;
    assert_eq!(r.body["data"]["pagination"]["total"], 0);
    for bad in ["?status=gone", "?sort=password", "?limit=0", "?page=-3"] {
        list(bad).await.assert_error(400, "VALIDATION_ERROR");
    }
    // Detail.
    let r = app
        .send(bearer(
            app.get(&format!("/partner/members/{ann}")),
            &p.viewer,
        ))
        .await;
    r.assert_status(200);
    let d = &r.body["data"];
    assert_eq!(d["email"], "ann@example.com");
    assert_eq!(
        d["stats"],
        json!({"totalWatchTimeMinutes": 91, "classesWatched": 4, "activeDays": 3, "favoriteCategory": "Yoga"})
    );
    assert!(d["viewingHistory"].is_array());
    app.send(bearer(app.get("/partner/members/not-a-uuid"), &p.viewer))
        .await
        .assert_error(404, "NOT_FOUND");
    app.send(bearer(
        app.get(&format!("/partner/members/{ann}?historyLimit=500")),
        &p.viewer,
    ))
    .await
    .assert_error(400, "VALIDATION_ERROR");
}

/// The names on the first page of `client`'s members whose name or email holds `text` (in the
/// default order), and how many matched.
async fn search_page(
    db: &sqlx::PgPool,
    client: portal_shared::domain::ids::ClientId,
    text: &str,
) -> (Vec<String>, i64) {
    use portal_shared::domain::pagination::Page;
    use portal_shared::pg::members;
    let filter = members::ListFilter {
        search: Some(text.into()),
        status: None,
    };
    let sort = members::parse_sort(None).unwrap();
    let (rows, total) = members::list(
        db,
        client,
        chrono::Utc::now(),
        &filter,
        sort,
        Page { page: 1, limit: 20 },
    )
    .await
    .unwrap();
    (rows.into_iter().map(|r| r.name).collect(), total)
}

/// A member search of a large partner is one scan of the search index, which holds the client
/// too, and a primary-key lookup per match: no bitmap of all the partner's members (what Postgres
/// chose from a B-tree on the client, before statistics existed, with one trigram index per
/// column). Loaded without `ANALYZE`.
#[tokio::test]
async fn a_search_reads_only_the_search_index_without_statistics() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let other = app.partner().await;
    for (client, n) in [(p.t.client_id, 5_000), (other.t.client_id, 5_000)] {
        sqlx::query(
            "INSERT INTO members (id, client_id, email, name, password_hash)
             SELECT gen_random_uuid(), $1, 'm' || i || '.' || $1 || '@example.com', 'Member ' || i, 'x'
             FROM generate_series(1, $2) AS i",
        )
        .bind(client)
        .bind(n)
        .execute(&app.db)
        .await
        .unwrap();
    }
    // One connection, so the statistics this test reads are the search's own.
    let one = app.single_connection().await;
    let scans = |one: sqlx::PgPool| async move {
        portal_tests::flushed_statistics::<(String, i64)>(
            &one,
            "SELECT indexrelname::text, idx_scan FROM pg_stat_user_indexes
             WHERE relname IN ('members', 'member_search') ORDER BY 1",
        )
        .await
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
    };
    let before = scans(one.clone()).await;
    // Six times: a prepared statement's generic plan is tried from the sixth run on.
    for _ in 0..6 {
        assert_eq!(
            search_page(&one, p.t.client_id, "member 4321").await,
            (vec!["Member 4321".to_string()], 1)
        );
    }
    let after = scans(one).await;
    let mut used: Vec<(&str, i64)> = after
        .iter()
        .map(|(k, v)| (k.as_str(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    used.sort_unstable();
    assert_eq!(used, vec![("member_search_idx", 6), ("members_pkey", 6)]);

    // The search text follows a member's name and email however they change, and goes with them.
    let search = |text: &'static str| {
        let (db, client) = (app.db.clone(), p.t.client_id);
        async move { search_page(&db, client, text).await.0 }
    };
    sqlx::query("UPDATE members SET name = 'Rena Moved', email = 'rena@moved.example' WHERE client_id = $1 AND name = 'Member 4321'")
        .bind(p.t.client_id)
        .execute(&app.db)
        .await
        .unwrap();
    assert!(search("member 4321").await.is_empty());
    assert_eq!(search("rena mov").await, vec!["Rena Moved"]);
    assert_eq!(search("@moved.example").await, vec!["Rena Moved"]);
    // A landing's summary update leaves the search text alone (and finds it as it was).
    sqlx::query("UPDATE members SET watch_seconds = watch_seconds + 60, last_active_at = now() WHERE client_id = $1")
        .bind(p.t.client_id)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(search("rena mov").await, vec!["Rena Moved"]);
    sqlx::query("DELETE FROM members WHERE client_id = $1 AND name = 'Rena Moved'")
        .bind(p.t.client_id)
        .execute(&app.db)
        .await
        .unwrap();
    assert!(search("rena mov").await.is_empty());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM member_search WHERE client_id = $1")
        .bind(p.t.client_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 4_999);
}
