//! Login-burst benchmark: the real `portal-api` process under N parallel logins (default 500,
//! `BENCH_LOGINS`), each from its own address (through `X-Forwarded-For` from a trusted proxy, so
//! no throttle applies) and each costing an argon2 check. Prints the API's resident memory before
//! and at its peak, and how the logins were answered: checked (401) or refused while every
//! hashing slot was busy (503). Hashing is bounded to one slot per core, so the peak stays near
//! cores × 19 MiB above idle whatever N is.
//!
//! Run: `bash scripts/bench.sh` (release build).

use std::time::Instant;

use futures::future::join_all;
use portal_tests::TestApp;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_LOGINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let app = TestApp::spawn().await;
    let t = app.tenant().await;
    let (mut api, base) = app
        .api_process(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("PASSWORD_HASH_WAIT_MS", "2000"),
        ])
        .await;
    let pid = api.id().expect("api pid");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .build()?;
    // One real login first, so the process is warm (dummy hash built, pools connected).
    http.post(format!("{base}/partner-auth/login"))
        .json(&serde_json::json!({"email": t.admin_email, "password": portal_tests::PASSWORD}))
        .send()
        .await?;
    let idle = portal_tests::proc_status_kib(pid, "VmRSS:");
    let start = Instant::now();
    let statuses = join_all((0..n).map(|i| {
        let (http, base) = (&http, &base);
        async move {
            http.post(format!("{base}/partner-auth/login"))
                .header(
                    "x-forwarded-for",
                    format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
                )
                .json(&serde_json::json!({
                    "email": format!("nobody{i}@bench.example"),
                    "password": "not the password",
                }))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    }))
    .await;
    let elapsed = start.elapsed();
    let peak = portal_tests::proc_status_kib(pid, "VmHWM:");
    let count = |s: u16| statuses.iter().filter(|&&x| x == s).count();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!("| login burst ({n} parallel, {cores} cores) | value |");
    println!("|---|---|");
    println!(
        "| API resident memory before | {:.1} MiB |",
        idle as f64 / 1024.0
    );
    println!(
        "| API peak resident memory | {:.1} MiB |",
        peak as f64 / 1024.0
    );
    println!("| checked (401) | {} |", count(401));
    println!(
        "| refused while hashing was saturated (503 + Retry-After) | {} |",
        count(503)
    );
    println!("| other | {} |", n - count(401) - count(503));
    println!("| wall time | {:.2} s |", elapsed.as_secs_f64());
    api.kill().await.ok();
    Ok(())
}
