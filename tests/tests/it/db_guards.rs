//! Query time limits on the API's reads: Postgres `statement_timeout` and ClickHouse
//! `max_execution_time`. A read over the limit answers 503 and the database stops working on it.

use std::time::{Duration, Instant};

use portal_tests::{bearer, database_url, TestApp};
use sqlx::{Connection, PgConnection};

/// Backends of `db` other than `own` that are running a statement or waiting for a lock.
async fn busy_backends(conn: &mut PgConnection, db: &str, own: i32) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT query FROM pg_stat_activity
         WHERE datname = $1 AND pid <> $2 AND pid <> pg_backend_pid()
           AND (state = 'active' OR wait_event_type = 'Lock')",
    )
    .bind(db)
    .bind(own)
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_postgres_read_over_the_time_limit_answers_503_and_is_cancelled() {
    let app = TestApp::spawn_with(|v| {
        v.insert("DATABASE_STATEMENT_TIMEOUT_MS".into(), "300".into());
    })
    .await;
    let p = app.partner().await;
    // Another session holds a lock the member list has to wait for.
    let url = database_url(&app.db_name);
    let mut holder = PgConnection::connect(&url).await.unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();

    let started = Instant::now();
    let r = app
        .send(bearer(app.get("/partner/members"), &p.admin))
        .await;
    let took = started.elapsed();
    // Still holding the lock: nothing of the request may be left running or waiting.
    let mut observer = PgConnection::connect(&url).await.unwrap();
    let left = busy_backends(&mut observer, &app.db_name, holder_pid).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();

    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("5"));
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("took too long"), "{msg}");
    assert!(
        took < Duration::from_secs(5),
        "answered after {took:?}, not at the 300 ms limit"
    );
    assert!(left.is_empty(), "still running in Postgres: {left:?}");
    // The lock is gone: the same read answers, on the same pool.
    app.send(bearer(app.get("/partner/members"), &p.admin))
        .await
        .assert_status(200);
}

/// Queries in ClickHouse's process list that read `table` for `client`.
async fn running_in_clickhouse(app: &TestApp, table: &str, client: &str) -> Vec<String> {
    // The pattern is assembled on the server, so this query does not find itself.
    app.state
        .ch
        .server()
        .query("SELECT query FROM system.processes WHERE position(query, concat(?, ?)) > 0 AND position(query, ?) > 0")
        .bind(&table[..3])
        .bind(&table[3..])
        .bind(client)
        .fetch_all::<String>()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clickhouse_read_over_the_time_limit_answers_503_and_is_stopped() {
    let app = TestApp::spawn_with(|v| {
        v.insert("CLICKHOUSE_MAX_EXECUTION_SECS".into(), "1".into());
    })
    .await;
    let p = app.partner().await;
    let client = p.t.client_id.to_string();
    // The dashboard's ClickHouse reads go to daily_class_stats: make it a view over six billion
    // generated rows of this partner (about 20 s of work per query on two cores).
    let db = &app.db_name;
    for sql in [
        format!("DROP TABLE {db}.daily_class_stats_mv"),
        format!("DROP TABLE {db}.daily_class_stats"),
        format!(
            "CREATE VIEW {db}.daily_class_stats AS
             SELECT toUUID('{client}') AS client_id, today() AS day, 'Yoga' AS category,
                    'yoga-1' AS class_id, toUInt64(1) AS views, number % 60 AS watched_seconds
             FROM system.numbers LIMIT 6000000000"
        ),
    ] {
        app.state.ch.server().query(&sql).execute().await.unwrap();
    }

    let started = Instant::now();
    let r = app
        .send(bearer(app.get("/partner/dashboard"), &p.admin))
        .await;
    let took = started.elapsed();
    let mut left = running_in_clickhouse(&app, "daily_class_stats", &client).await;
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = running_in_clickhouse(&app, "daily_class_stats", &client).await;
    }
    if !left.is_empty() {
        // Do not leave the work running on the shared server when the assertion below fails.
        app.state
            .ch
            .server()
            .query("KILL QUERY WHERE position(query, ?) > 0 ASYNC")
            .bind(&client)
            .execute()
            .await
            .ok();
    }

    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(r.header("retry-after"), Some("5"));
    let msg = r.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("clickhouse"), "{msg}");
    assert!(
        took < Duration::from_secs(10),
        "answered after {took:?}, not at the 1 s limit"
    );
    assert!(left.is_empty(), "still running in ClickHouse: {left:?}");
}
