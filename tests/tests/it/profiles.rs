//! Members' active days and favourite category, kept incrementally by the landing: after every
//! flush they (and the per-member state behind them) equal what the member's whole history in
//! ClickHouse says. Members counted before that state existed have it rebuilt once, exactly, and
//! a flush of a tracked member reads no history from ClickHouse.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, Utc};
use portal_shared::ch::ClickHouse;
use portal_shared::domain::active_days::ActiveDays;
use portal_shared::domain::ids::{BatchId, ClientId, MemberId};
use portal_shared::pipeline::{self, ChEvent, Pending};
use portal_tests::{Partner, TestApp, LANDED};
use uuid::Uuid;

/// A member's profile: the two fields and the state they are kept from.
#[derive(Debug, PartialEq, Eq)]
struct Profile {
    active_days: i64,
    favorite_category: Option<String>,
    days: Vec<NaiveDate>,
    seconds: BTreeMap<String, i64>,
}

/// The profile as the member's whole history in ClickHouse (`watch_events`, which on a cluster
/// every replica holds once an insert returns) has it:
/// distinct local days, seconds per category, the favourite by most seconds, ties to the first
/// category in byte order.
async fn from_clickhouse(app: &TestApp, client: ClientId, member: MemberId) -> Profile {
    let ch = &app.state.ch.client;
    let days: Vec<String> = ch
        .query(
            "SELECT DISTINCT toString(local_date) AS d FROM watch_events
             WHERE client_id = toUUID(?) AND member_id = toUUID(?) ORDER BY d",
        )
        .bind(client.to_string())
        .bind(member.to_string())
        .fetch_all()
        .await
        .unwrap();
    let seconds: Vec<(String, u64)> = ch
        .query(
            "SELECT category, sum(watched_seconds) FROM watch_events
             WHERE client_id = toUUID(?) AND member_id = toUUID(?) GROUP BY category",
        )
        .bind(client.to_string())
        .bind(member.to_string())
        .fetch_all()
        .await
        .unwrap();
    let seconds: BTreeMap<String, i64> = seconds.into_iter().map(|(c, s)| (c, s as i64)).collect();
    // BTreeMap iterates in byte order: the first of the most wins ties.
    let favorite_category = seconds
        .iter()
        .fold(None::<(&String, i64)>, |best, (c, s)| match best {
            Some((_, b)) if b >= *s => best,
            _ => Some((c, *s)),
        })
        .map(|(c, _)| c.clone());
    Profile {
        active_days: days.len() as i64,
        favorite_category,
        days: days.iter().map(|d| d.parse().unwrap()).collect(),
        seconds,
    }
}

/// The profile as Postgres keeps it: `members` and the state tables.
async fn from_postgres(app: &TestApp, member: MemberId) -> Profile {
    let (active_days, favorite_category): (i32, Option<String>) =
        sqlx::query_as("SELECT active_days, favorite_category FROM members WHERE id = $1")
            .bind(member)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // The set's bits read with Postgres's own `get_bit`, independently of the product's encoder.
    let days: Vec<NaiveDate> = sqlx::query_scalar(
        "SELECT m.active_days_since + i FROM members m,
                generate_series(0, length(m.active_day_bits) * 8 - 1) AS i
         WHERE m.id = $1 AND get_bit(m.active_day_bits, i) = 1 ORDER BY 1",
    )
    .bind(member)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let seconds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT category, seconds FROM member_category_seconds WHERE member_id = $1",
    )
    .bind(member)
    .fetch_all(&app.db)
    .await
    .unwrap();
    Profile {
        active_days: i64::from(active_days),
        favorite_category,
        days,
        seconds: seconds.into_iter().collect(),
    }
}

/// Asserts that Postgres keeps the profile ClickHouse's history says, and returns it.
async fn assert_profile_matches(
    app: &TestApp,
    p: &Partner,
    member: MemberId,
    when: &str,
) -> Profile {
    let expected = from_clickhouse(app, p.t.client_id, member).await;
    assert_eq!(from_postgres(app, member).await, expected, "{when}");
    expected
}

/// A view by `member` in `batch`: `seconds` of `category` on local day `day`.
fn view(
    p: &Partner,
    member: MemberId,
    batch: BatchId,
    day: NaiveDate,
    category: &str,
    seconds: u32,
) -> Pending {
    let started_at = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
    Pending {
        batch_id: batch,
        likely_new: true,
        row: ChEvent {
            client_id: p.t.client_id,
            event_id: Uuid::new_v4(),
            member_id: member,
            class_id: format!("{}-1", category.to_lowercase()),
            category: category.into(),
            started_at,
            local_date: day,
            watched_seconds: seconds,
            received_at: Utc::now(),
        },
    }
}

/// `n` days before a fixed day (the landing does not look at how old a view is).
fn day(n: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap() - Duration::days(n)
}

async fn land(app: &TestApp, pending: &[Pending]) -> pipeline::Flushed {
    pipeline::land_pending(&app.db, &app.state.ch, pending)
        .await
        .unwrap()
}

/// Marks `member` as counted before the profile state existed: the summary `history` gives (as
/// the full recompute left it) and no state rows, with `history` in ClickHouse only.
async fn counted_before_upgrade(app: &TestApp, member: MemberId, history: &[Pending]) {
    app.insert_ch_events(history.iter().map(|p| p.row.clone()))
        .await;
    let profile = from_clickhouse(app, history[0].row.client_id, member).await;
    let seconds: i64 = history
        .iter()
        .map(|p| i64::from(p.row.watched_seconds))
        .sum();
    sqlx::query(
        "UPDATE members SET profile_tracked = false, class_views = $2, watch_seconds = $3,
             active_days = $4, favorite_category = $5 WHERE id = $1",
    )
    .bind(member)
    .bind(history.len() as i64)
    .bind(seconds)
    .bind(profile.active_days as i32)
    .bind(&profile.favorite_category)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn tracked(app: &TestApp, member: MemberId) -> bool {
    sqlx::query_scalar("SELECT profile_tracked FROM members WHERE id = $1")
        .bind(member)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn profiles_follow_every_flush_as_clickhouse_has_them() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let ann = app.member_id(&p, "ann@example.com", "Ann").await;
    let bob = app.member_id(&p, "bob@example.com", "Bob").await;
    assert!(tracked(&app, ann).await, "new members start tracked");

    // Flush 1: two members, two days, two categories.
    let b1 = BatchId::new_v7();
    let first = vec![
        view(&p, ann, b1, day(5), "Yoga", 600),
        view(&p, ann, b1, day(5), "HIIT", 300),
        view(&p, ann, b1, day(4), "Yoga", 100),
        view(&p, bob, BatchId::new_v7(), day(5), "Pilates", 50),
    ];
    assert_eq!(land(&app, &first).await.events_counted, 4);
    let a = assert_profile_matches(&app, &p, ann, "after flush 1").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (2, Some("Yoga"))
    );
    assert_profile_matches(&app, &p, bob, "after flush 1").await;

    // Flush 2: a day Ann had already (not counted again) and HIIT up to a tie with Yoga (700 s
    // each: HIIT comes first). Batch 1 redelivered and Ann's 600-second Yoga view sent again in
    // another batch count nothing: counted twice, Yoga would lead.
    let b2 = BatchId::new_v7();
    let mut again = first[0].clone();
    again.batch_id = b2;
    let second = vec![
        view(&p, ann, b2, day(4), "HIIT", 400),
        again,
        first[0].clone(),
        first[1].clone(),
    ];
    assert_eq!(land(&app, &second).await.events_counted, 1);
    let a = assert_profile_matches(&app, &p, ann, "after flush 2").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (2, Some("HIIT"))
    );
    assert_eq!(a.seconds["Yoga"], 700);

    // Flush 3: a third category joins the tie; in byte order upper case comes first, so HIIT
    // stays, whatever the database's collation says.
    let third = vec![
        view(&p, ann, BatchId::new_v7(), day(3), "barre", 700),
        view(&p, bob, BatchId::new_v7(), day(5), "Pilates", 10),
    ];
    assert_eq!(land(&app, &third).await.events_counted, 2);
    let a = assert_profile_matches(&app, &p, ann, "after flush 3").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (3, Some("HIIT"))
    );
    let b = assert_profile_matches(&app, &p, bob, "after flush 3").await;
    assert_eq!(
        b.active_days, 1,
        "a day seen again in another flush counts once"
    );

    // Flush 4: one second breaks the tie, on a day already counted; two views on one new day in
    // one flush make one day.
    let b4 = BatchId::new_v7();
    let fourth = vec![
        view(&p, ann, b4, day(5), "Yoga", 1),
        view(&p, ann, b4, day(1), "Pilates", 5),
        view(&p, ann, b4, day(1), "Pilates", 5),
    ];
    assert_eq!(land(&app, &fourth).await.events_counted, 3);
    let a = assert_profile_matches(&app, &p, ann, "after flush 4").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (4, Some("Yoga"))
    );
    assert_eq!(
        (a.seconds["Yoga"], a.seconds["HIIT"], a.seconds["Pilates"]),
        (701, 700, 10)
    );
    assert_eq!(app.count(LANDED, p.t.client_id).await, 10);
    assert_eq!(app.class_views(p.t.client_id).await, 10);
}

#[tokio::test]
async fn a_member_counted_before_the_profile_state_is_rebuilt_once_and_exactly() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let ann = app.member_id(&p, "ann@example.com", "Ann").await;
    // What landed before the upgrade: in ClickHouse, and in the summary's two fields.
    let old = BatchId::new_v7();
    let history = vec![
        view(&p, ann, old, day(20), "Yoga", 1000),
        view(&p, ann, old, day(19), "HIIT", 600),
        view(&p, ann, old, day(18), "Yoga", 50),
    ];
    counted_before_upgrade(&app, ann, &history).await;
    assert!(!tracked(&app, ann).await);
    // A landing that died after its ClickHouse insert: claimed, in ClickHouse, not landed. It is
    // not counted yet, so the rebuild leaves it out.
    let died = BatchId::new_v7();
    let interrupted = vec![view(&p, ann, died, day(17), "HIIT", 300)];
    assert_eq!(
        pipeline::claim(&app.db, &interrupted)
            .await
            .unwrap()
            .fresh
            .len(),
        1
    );
    app.insert_ch_events(interrupted.iter().map(|p| p.row.clone()))
        .await;

    // The first landing since the upgrade rebuilds Ann's state, its own view included once.
    let next = vec![view(&p, ann, BatchId::new_v7(), day(19), "HIIT", 100)];
    assert_eq!(land(&app, &next).await.events_counted, 1);
    assert!(tracked(&app, ann).await);
    let rebuilt = from_postgres(&app, ann).await;
    assert_eq!(
        rebuilt,
        Profile {
            active_days: 3,
            favorite_category: Some("Yoga".into()),
            days: vec![day(20), day(19), day(18)],
            seconds: [("HIIT".to_string(), 700), ("Yoga".to_string(), 1050)].into(),
        }
    );

    // The interrupted batch is redelivered and counted now, once: with its 300 s counted twice
    // HIIT (1,300 s) would lead Yoga (1,050 s).
    assert_eq!(land(&app, &interrupted).await.events_counted, 1);
    let a = assert_profile_matches(&app, &p, ann, "after the redelivery").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (4, Some("Yoga"))
    );

    // From now on landings add to the state.
    let later = vec![view(&p, ann, BatchId::new_v7(), day(2), "HIIT", 100)];
    assert_eq!(land(&app, &later).await.events_counted, 1);
    let a = assert_profile_matches(&app, &p, ann, "after a later landing").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (5, Some("HIIT"))
    );
    assert_eq!(app.class_views(p.t.client_id).await, 6);
}

#[tokio::test]
async fn landers_racing_on_members_counted_before_the_upgrade_count_each_view_once() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let first = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let second = portal_worker::WorkerState::new(app.config()).await.unwrap();
    let mut members = Vec::new();
    for i in 0..6 {
        let m = app
            .member_id(&p, &format!("m{i}@example.com"), &format!("M{i}"))
            .await;
        let history = vec![
            view(&p, m, BatchId::new_v7(), day(25), "Yoga", 500),
            view(&p, m, BatchId::new_v7(), day(24), "HIIT", 400),
        ];
        counted_before_upgrade(&app, m, &history).await;
        members.push(m);
    }
    // Two landers of different batches, each with views of every member, at once, in rounds:
    // the first lander to lock a member rebuilds it, leaving out the other's views until that
    // one lands them.
    for round in 0..4 {
        let (a, b) = (BatchId::new_v7(), BatchId::new_v7());
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for (i, m) in members.iter().enumerate() {
            let cat = if (i + round) % 2 == 0 { "HIIT" } else { "Yoga" };
            ours.push(view(&p, *m, a, day(10 - round as i64), cat, 60));
            theirs.push(view(&p, *m, b, day(9 - round as i64), "HIIT", 45));
        }
        let (x, y) = tokio::join!(
            pipeline::land_pending(&first.db, &first.ch, &ours),
            pipeline::land_pending(&second.db, &second.ch, &theirs),
        );
        assert_eq!(x.unwrap().events_counted + y.unwrap().events_counted, 12);
    }
    for m in &members {
        assert!(tracked(&app, *m).await);
        let profile = assert_profile_matches(&app, &p, *m, "after the races").await;
        assert_eq!(profile.active_days, 7);
    }
}

#[tokio::test]
async fn a_flush_of_a_tracked_member_reads_none_of_their_history() {
    let app = TestApp::spawn().await;
    let p = app.partner().await;
    let ann = app.member_id(&p, "ann@example.com", "Ann").await;
    let bob = app.member_id(&p, "bob@example.com", "Bob").await;
    // Both have 20,000 views in ClickHouse; Ann's are counted in her state, Bob's before it existed.
    let long = |m: MemberId| -> Vec<Pending> {
        (0..20_000)
            .map(|i| view(&p, m, BatchId::new_v7(), day(30 + i % 300), "Yoga", 60))
            .collect()
    };
    let ann_history = long(ann);
    app.insert_ch_events(ann_history.iter().map(|p| p.row.clone()))
        .await;
    let ann_days: ActiveDays = ann_history.iter().map(|v| v.row.local_date).collect();
    sqlx::query("UPDATE members SET active_days_since = $2, active_day_bits = $3 WHERE id = $1")
        .bind(ann)
        .bind(ann_days.since())
        .bind(ann_days.bits())
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO member_category_seconds (client_id, member_id, category, seconds)
         VALUES ($1, $2, 'Yoga', 1200000)",
    )
    .bind(p.t.client_id)
    .bind(ann)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("UPDATE members SET active_days = 300, favorite_category = 'Yoga' WHERE id = $1")
        .bind(ann)
        .execute(&app.db)
        .await
        .unwrap();
    counted_before_upgrade(&app, bob, &long(bob)).await;

    // A ClickHouse connection that refuses to read more than 10,000 rows in a query: Ann's
    // history cannot be read through it, her new views can be inserted.
    let mut limited: ClickHouse = app.state.ch.clone();
    limited.client = limited.client.with_setting("max_rows_to_read", "10000");
    let ann_flush = vec![view(&p, ann, BatchId::new_v7(), day(1), "HIIT", 30)];
    let landed = pipeline::land_pending(&app.db, &limited, &ann_flush).await;
    assert_eq!(landed.unwrap().events_counted, 1);
    let a = assert_profile_matches(&app, &p, ann, "after a flush without reads").await;
    assert_eq!(
        (a.active_days, a.favorite_category.as_deref()),
        (301, Some("Yoga"))
    );

    // The limit does catch reading a history: Bob's one-time rebuild fails through it, and
    // succeeds (resuming the flush) through an unlimited connection.
    let bob_flush = vec![view(&p, bob, BatchId::new_v7(), day(1), "HIIT", 30)];
    let refused = pipeline::land_pending(&app.db, &limited, &bob_flush).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(!tracked(&app, bob).await);
    assert_eq!(land(&app, &bob_flush).await.events_counted, 1);
    assert_profile_matches(&app, &p, bob, "after the rebuild").await;
}
