//! What the bench binaries share: members loaded straight into Postgres, member tokens, event
//! batches with a skewed spread of senders, and a load generator for `POST /app/events`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Duration as ChronoDuration, Utc};
use portal_shared::domain::auth::TokenType;
use portal_shared::domain::ids::{ClientId, MemberId};
use rand::distr::weighted::WeightedIndex;
use rand::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{event, TestApp};

/// Events per batch the benches send.
pub const BATCH: usize = 100;
/// The catalogue of [`TestApp::catalogue`], with categories.
pub const CLASSES: [(&str, &str); 4] = [
    ("yoga-1", "Yoga"),
    ("yoga-2", "Yoga"),
    ("hiit-1", "HIIT"),
    ("pilates-1", "Pilates"),
];

/// A made-up member name (first, last) for index `i`.
pub fn member_name(i: usize) -> (String, String) {
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "ra", "ten", "so", "vi", "dan", "el", "or", "ba", "nu", "sha", "ri",
        "go", "pe", "tu", "lin", "mar", "jo",
    ];
    let f = (i * 7) % 400;
    let l = (i * 13) % 8000;
    let first = format!("{}{}", SYL[f / 20], SYL[f % 20]);
    let last = format!("{}{}{}", SYL[l / 400], SYL[(l / 20) % 20], SYL[l % 20]);
    (first, last)
}

/// Inserts `n` members of `client` straight into Postgres (no `ANALYZE` after) and returns their
/// ids, in insertion order.
pub async fn load_members(
    db: &sqlx::PgPool,
    client: ClientId,
    n: usize,
    tag: &str,
) -> Vec<MemberId> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let (names, emails): (Vec<String>, Vec<String>) = (0..n)
        .map(|i| {
            let (first, last) = member_name(i);
            let cap = |s: &str| s[..1].to_uppercase() + &s[1..];
            (
                format!("{} {}", cap(&first), cap(&last)),
                format!("{first}.{last}.{i}.{tag}@bench.example"),
            )
        })
        .unzip();
    for ((ids, names), emails) in ids
        .chunks(20_000)
        .zip(names.chunks(20_000))
        .zip(emails.chunks(20_000))
    {
        sqlx::query(
            "INSERT INTO members (id, client_id, email, name, password_hash)
             SELECT i, $1, e, n, 'x' FROM UNNEST($2::uuid[], $3::text[], $4::text[]) AS t(i, e, n)",
        )
        .bind(client)
        .bind(ids)
        .bind(emails)
        .bind(names)
        .execute(db)
        .await
        .unwrap();
    }
    ids.into_iter().map(MemberId).collect()
}

/// Event batches (of [`BATCH`]) and who sends each: members drawn by `weights` (or always the
/// first member). Views start between 1 hour and 29 days ago, so they spread over many days.
pub fn batches(
    n_events: usize,
    members: usize,
    weights: Option<&WeightedIndex<f64>>,
) -> Vec<(usize, Value)> {
    let mut rng = StdRng::seed_from_u64(n_events as u64 ^ members as u64);
    let now = Utc::now();
    (0..n_events / BATCH)
        .map(|b| {
            let who = weights.map_or(0, |w| w.sample(&mut rng));
            let events: Vec<Value> = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    let ago = 3600 + (n as i64 * 7919) % (29 * 86_400);
                    event(
                        CLASSES[n % 4].0,
                        now - ChronoDuration::seconds(ago),
                        60 + (n % 1100) as u32,
                    )
                })
                .collect();
            (who, json!({ "events": events }))
        })
        .collect()
}

/// Request bodies ready to send, with who sends each (see [`bodies`]).
pub type Bodies = Vec<(usize, Vec<u8>)>;

/// Serializes `batches` for [`post_all`]. Call it before starting a clock: the load generator
/// shares the cores with the product, and should take as little of them, inside a measurement,
/// as it can.
pub fn bodies(batches: &[(usize, Value)]) -> Bodies {
    batches
        .iter()
        .map(|(who, body)| (*who, serde_json::to_vec(body).unwrap()))
        .collect()
}

/// Posts `bodies` with `concurrency` clients, spread over the API instances at `bases`, as the
/// members whose tokens are given; every answer must be 202. Returns the time taken.
pub async fn post_all(
    bases: &[String],
    api_key: &str,
    tokens: &[String],
    bodies: Bodies,
    concurrency: usize,
) -> Duration {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let queue = Arc::new(tokio::sync::Mutex::new(bodies.into_iter()));
    let tokens = Arc::new(tokens.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (queue, client, tokens) = (queue.clone(), client.clone(), tokens.clone());
        let url = format!("{}/app/events", bases[c % bases.len()]);
        let key = api_key.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((who, body)) = queue.lock().await.next() else {
                    break;
                };
                let r = client
                    .post(&url)
                    .header("x-api-key", &key)
                    .bearer_auth(&tokens[who])
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                assert_eq!(status, 202, "{}", r.text().await.unwrap_or_default());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// Member access tokens for `members` of `client`, valid a day.
pub fn tokens_for(app: &TestApp, client: ClientId, members: &[MemberId]) -> Vec<String> {
    members
        .iter()
        .map(|m| {
            app.state
                .jwt
                .issue_with_times(
                    TokenType::Member,
                    m.0,
                    client,
                    None,
                    Utc::now().timestamp(),
                    Utc::now().timestamp() + 24 * 3600,
                )
                .unwrap()
        })
        .collect()
}
