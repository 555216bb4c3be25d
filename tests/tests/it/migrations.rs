//! Postgres and ClickHouse migrations: idempotent, recorded, and refusing edited history.

use portal_shared::ch::{self, ClickHouse};
use portal_tests::{clickhouse_url, TestApp};

#[tokio::test]
async fn postgres_migrations_are_idempotent() {
    let app = TestApp::spawn().await;
    // The template was migrated already; running again applies nothing and fails nothing.
    portal_shared::pg::migrate(&app.db).await.unwrap();
    portal_shared::pg::migrate(&app.db).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(applied as usize, portal_shared::pg::MIGRATOR.iter().count());
    let trgm: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(trgm);
}

#[tokio::test]
async fn clickhouse_runner_applies_once_and_records_each_migration() {
    let app = TestApp::spawn().await;
    let db = format!("{}_runner", app.namespace);
    let ch = ClickHouse::new(&clickhouse_url(), &db, "default", "");
    let files = [
        (
            "0001_events",
            "-- first; with a semicolon in a comment\nCREATE TABLE t1 (id UInt32, s String DEFAULT 'a;b') ENGINE = MergeTree ORDER BY id;\nINSERT INTO t1 (id) VALUES (1);",
        ),
        ("0002_more", "CREATE TABLE t2 (id UInt32) ENGINE = MergeTree ORDER BY id"),
    ];
    let migrations = ch::parse_migrations(&files).unwrap();
    let first = ch::migrate(&ch, &app.db, &migrations).await.unwrap();
    assert_eq!(first, vec![1, 2]);
    let second = ch::migrate(&ch, &app.db, &migrations).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    let rows: u64 = ch
        .client
        .query("SELECT count() FROM t1")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 1, "statements of an applied migration ran once");
    let recorded: Vec<(u32, String)> = ch
        .client
        .query("SELECT version, name FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(recorded, vec![(1, "events".into()), (2, "more".into())]);

    // Editing an applied migration is refused, naming it.
    let edited = ch::parse_migrations(&[
        (
            "0001_events",
            "CREATE TABLE t1 (id UInt64) ENGINE = MergeTree ORDER BY id",
        ),
        files[1],
    ])
    .unwrap();
    let err = ch::migrate(&ch, &app.db, &edited).await.unwrap_err();
    assert!(
        err.to_string().contains("changed after it was applied"),
        "{err}"
    );

    // A failing statement names its migration and is not recorded.
    let broken =
        ch::parse_migrations(&[files[0], files[1], ("0003_broken", "CREATE TABLE nope (")])
            .unwrap();
    let err = ch::migrate(&ch, &app.db, &broken).await.unwrap_err();
    assert!(
        err.to_string().contains("0003") || err.to_string().contains("3 (broken)"),
        "{err}"
    );
    let versions: Vec<u32> = ch
        .client
        .query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(versions, vec![1, 2]);
    ch.server()
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_clickhouse_migrations_take_turns() {
    let app = TestApp::spawn().await;
    let db = format!("{}_conc", app.namespace);
    let ch = ClickHouse::new(&clickhouse_url(), &db, "default", "");
    let migrations = ch::parse_migrations(&[(
        "0001_counter",
        "CREATE TABLE c (id UInt32) ENGINE = MergeTree ORDER BY id;\nINSERT INTO c VALUES (1)",
    )])
    .unwrap();
    let (a, b) = tokio::join!(
        ch::migrate(&ch, &app.db, &migrations),
        ch::migrate(&ch, &app.db, &migrations)
    );
    let mut applied = a.unwrap();
    applied.extend(b.unwrap());
    assert_eq!(applied, vec![1], "exactly one of the two runs applies it");
    let rows: u64 = ch
        .client
        .query("SELECT count() FROM c")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 1);
    ch.server()
        .query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await
        .unwrap();
}

/// Migration `20261125000013` turns the rows of `member_active_days` into each member's bit set
/// on their row, in the layout the landing reads and writes (`ActiveDays`, Postgres's `get_bit`
/// order): a database migrated to the migration before, with days in it, then to the end.
#[tokio::test]
async fn the_active_days_table_becomes_each_members_bit_set() {
    use chrono::NaiveDate;
    use portal_shared::domain::active_days::ActiveDays;
    use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};
    let name = format!("portal_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&portal_tests::admin_url())
        .await
        .unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap();
    let mut c = PgConnection::connect(&portal_tests::database_url(&name))
        .await
        .unwrap();
    let migrator = &portal_shared::pg::MIGRATOR;
    migrator.run_to(20261125000012, &mut c).await.unwrap();
    let client = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO clients (id, name, slug) VALUES ($1, 'Gym', $2)")
        .bind(client)
        .bind(format!("gym-{}", client.simple()))
        .execute(&mut c)
        .await
        .unwrap();
    let d = |s: &str| s.parse::<NaiveDate>().unwrap();
    let year: Vec<NaiveDate> = (0..365)
        .map(|i| d("2025-01-01") + chrono::Days::new(i))
        .collect();
    let members: Vec<(uuid::Uuid, Vec<NaiveDate>)> = vec![
        (
            uuid::Uuid::new_v4(),
            vec![d("2026-01-01"), d("2026-01-02"), d("2026-01-10")],
        ),
        (uuid::Uuid::new_v4(), vec![d("2026-03-05")]),
        (uuid::Uuid::new_v4(), year),
        (uuid::Uuid::new_v4(), vec![]),
    ];
    for (i, (member, days)) in members.iter().enumerate() {
        sqlx::query(
            "INSERT INTO members (id, client_id, email, name, password_hash, active_days)
             VALUES ($1, $2, $3, 'M', 'x', $4)",
        )
        .bind(member)
        .bind(client)
        .bind(format!("m{i}@example.com"))
        .bind(days.len() as i32)
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO member_active_days (client_id, member_id, day)
             SELECT $1, $2, d FROM UNNEST($3::date[]) AS d",
        )
        .bind(client)
        .bind(member)
        .bind(days)
        .execute(&mut c)
        .await
        .unwrap();
    }
    migrator.run(&mut c).await.unwrap();
    for (member, days) in &members {
        let (since, bits, count): (Option<NaiveDate>, Vec<u8>, i32) = sqlx::query_as(
            "SELECT active_days_since, active_day_bits, active_days FROM members WHERE id = $1",
        )
        .bind(member)
        .fetch_one(&mut c)
        .await
        .unwrap();
        let set = ActiveDays::from_stored(since, bits);
        assert_eq!(&set.days().collect::<Vec<_>>(), days);
        assert_eq!(set.len(), count as usize);
        let expected: ActiveDays = days.iter().copied().collect();
        assert_eq!(set, expected, "the landing's own layout");
    }
    let table: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('member_active_days')::text")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(table, None);
    c.close().await.unwrap();
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE \"{name}\" WITH (FORCE)"
        )))
        .await
        .unwrap();
}
