//! Cluster mode only (scripts/cluster-test.sh runs these with `--ignored` against the local
//! cluster of scripts/ch-cluster.sh): exactly once while a replica is away.

use chrono::{Duration, Utc};
use portal_tests::{clickhouse_cluster, event, TestApp, LANDED};
use serde_json::json;

/// Runs `scripts/ch-cluster.sh <args>` (stop-node N / start-node N).
fn cluster_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ch-cluster.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .status()
        .expect("scripts/ch-cluster.sh");
    assert!(status.success(), "ch-cluster.sh {args:?}");
}

/// Rows of `client` in one server's local copy of `watch_events`, after it caught up.
async fn rows_on_node(app: &TestApp, node: u16, client: &str) -> u64 {
    let base = std::env::var("CH_CLUSTER_PORT_BASE")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(8300);
    let ch = clickhouse::Client::default()
        .with_url(format!("http://127.0.0.1:{}", base + node))
        .with_database(&app.db_name)
        .with_validation(false);
    ch.query("SYSTEM SYNC REPLICA watch_events_local")
        .execute()
        .await
        .unwrap();
    ch.query("SELECT count() FROM watch_events_local WHERE client_id = toUUID(?)")
        .bind(client)
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs the ClickHouse cluster of scripts/ch-cluster.sh (scripts/cluster-test.sh)"]
async fn a_replica_stopped_during_ingest_loses_and_doubles_nothing() {
    assert!(
        clickhouse_cluster().is_some(),
        "set TEST_CLICKHOUSE_CLUSTER (scripts/cluster-test.sh)"
    );
    let app = TestApp::spawn().await;
    app.catalogue().await;
    let p = app.partner().await;
    let (_m, token) = app.member(&p, "replica@example.com", "Replica").await;
    let client = p.t.client_id.to_string();
    // The partner's shard (the Distributed tables' key, modulo the two shards of equal weight)
    // and its second replica: node 2 for shard 1, node 4 for shard 2.
    let shard: u64 = app
        .state
        .ch
        .client
        .query("SELECT toUInt64(cityHash64(toString(toUUID(?))) % 2)")
        .bind(client.as_str())
        .fetch_one()
        .await
        .unwrap();
    let (first, second) = if shard == 0 { (1, 2) } else { (3, 4) };
    let worker = app.worker().await;
    let send = |n: i64| {
        let app = &app;
        let p = &p;
        let token = &token;
        async move {
            for b in 0..n {
                let events: Vec<_> = (0..10)
                    .map(|i| event("yoga-1", Utc::now() - Duration::minutes(b * 10 + i), 60))
                    .collect();
                app.post_events(p, token, json!(events))
                    .await
                    .assert_status(202);
            }
        }
    };
    send(5).await;
    app.assert_counted_once(p.t.client_id, 50, 30).await;

    cluster_script(&["stop-node", &second.to_string()]);
    send(5).await;
    // With one of the shard's two replicas away, the quorum cannot be met: nothing lands on a
    // single copy, and the worker keeps the batches and retries.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        app.count(LANDED, p.t.client_id).await,
        50,
        "nothing lands while the shard has one replica"
    );
    cluster_script(&["start-node", &second.to_string()]);
    app.assert_counted_once(p.t.client_id, 100, 90).await;
    // Both replicas hold every row once.
    assert_eq!(rows_on_node(&app, first, &client).await, 100);
    assert_eq!(rows_on_node(&app, second, &client).await, 100);
    worker.stop().await.unwrap();
}
