//! Demo activity: members (registered with vouchers), spare vouchers, products, content strings
//! and four months of watch events, so the dashboard, analytics, member pages and billing have
//! something to show. Runs once per demo client (skipped when it already has members).
//!
//! Events go through the same steps as the worker's (receipt claim → ClickHouse insert → land),
//! so the demo data obeys the same exactly-once rules; they are written directly because the API
//! only accepts events from the last 30 days.

use chrono::{Duration, Utc};
use portal_shared::ch::ClickHouse;
use portal_shared::domain::ids::BatchId;
use portal_shared::pg::clients::Client;
use portal_shared::pg::{audit, members, products, strings, vouchers};
use portal_shared::pipeline::{self, ChEvent, Pending};
use uuid::Uuid;

use super::{Report, DEMO_PASSWORD};
use crate::commands::Ctx;
use crate::error::{CliError, CliResult};

const MEMBERS: usize = 40;
const DAYS: i64 = 120;

/// Small deterministic generator (the demo looks the same on every machine).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const FIRST: [&str; 10] = [
    "Ana", "Ben", "Chloé", "Dev", "Emil", "Fatima", "Grace", "Hiro", "Ines", "Jonas",
];
const LAST: [&str; 4] = ["Lopez", "Schmidt", "Okafor", "Kowalski"];

pub async fn ensure(ctx: &Ctx, client: &Client, report: &mut Report) -> CliResult<()> {
    let existing = portal_shared::pg::members::count(&ctx.pool, client.id).await?;
    if existing > 0 {
        report.note(format!("activity: kept ({existing} members already)"));
        return Ok(());
    }
    let classes = portal_shared::pg::classes::categories(&ctx.pool).await?;
    if classes.is_empty() {
        report.note("activity: skipped (no class catalogue)");
        return Ok(());
    }
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);

    // Vouchers: one per member plus spares (some expiring, a few revoked).
    let mut tx = ctx
        .pool
        .begin()
        .await
        .map_err(portal_shared::AppError::from)?;
    let (_, codes) = vouchers::generate(
        &mut tx,
        client.id,
        None,
        &vouchers::Generate {
            quantity: (MEMBERS + 20) as i64,
            prefix: Some("DEMO".into()),
            expires_at: Some(Utc::now() + Duration::days(180)),
        },
    )
    .await?;
    for v in codes.iter().skip(MEMBERS + 15) {
        vouchers::revoke(&mut tx, client.id, v.id, None).await?;
    }
    tx.commit().await.map_err(portal_shared::AppError::from)?;

    // Members, registered as the app would (voucher redemption + summary row).
    let mut member_ids = Vec::with_capacity(MEMBERS);
    for (i, v) in codes.iter().take(MEMBERS).enumerate() {
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()]
        );
        let email = format!("member{:02}@demo-studio.example", i + 1);
        let (m, _) = members::register(
            &ctx.pool,
            members::Registration {
                client_id: client.id,
                voucher_code: &v.code,
                email: &email,
                password: DEMO_PASSWORD,
                name: &name,
            },
            (None, None),
        )
        .await?;
        // Spread registration dates over the demo period.
        let days_ago = DAYS - (i as i64 * DAYS / MEMBERS as i64);
        portal_shared::pg::members::backdate_registration(&ctx.pool, client.id, m.id, days_ago)
            .await?;
        member_ids.push((m.id, days_ago));
    }

    // Products and content strings.
    for (name, price, ptype, status, featured) in [
        (
            "Whey Protein Isolate",
            "29.99",
            "Supplements",
            "active",
            true,
        ),
        ("Yoga Mat Pro", "59.00", "Equipment", "active", true),
        (
            "Resistance Bands Set",
            "19.50",
            "Equipment",
            "active",
            false,
        ),
        ("Studio Hoodie", "45.00", "Apparel", "active", false),
        ("Electrolyte Tabs", "9.99", "Supplements", "draft", false),
        (
            "Foam Roller (2023)",
            "24.00",
            "Equipment",
            "archived",
            false,
        ),
    ] {
        let input = products::ProductInput::parse(
            &serde_json::json!({
                "name": name, "price": price, "productType": ptype, "status": status, "featured": featured,
                "description": format!("{name}, picked by the Demo Studio coaches."),
                "image": format!("https://example.com/img/{}.jpg", name.to_lowercase().replace(' ', "-")),
                "externalUrl": format!("https://shop.example.com/{}", name.to_lowercase().replace(' ', "-")),
            }),
            false,
        )?;
        products::create(&ctx.pool, client.id, &input).await?;
    }
    let entries = strings::prepare(&serde_json::json!({
        "st_aboutus": "<h1>About Demo Studio</h1><p>Classes for every body, every day.</p>",
        "st_privacypolicy": "<h1>Privacy Policy</h1><p>We only keep what we need to run your programme.</p>",
    }))?;
    strings::merge(
        &ctx.pool,
        client.id,
        audit::Entry::new(
            client.id,
            audit::Actor::System,
            audit::AuditAction::StringsUpdate,
        ),
        None,
        &entries,
    )
    .await?;

    // Watch events: members are active with different habits since they registered.
    let tz = client.tz();
    let now = Utc::now();
    let mut pending = Vec::new();
    for (idx, (member_id, since_days)) in member_ids.iter().enumerate() {
        let habit = 2 + (idx % 6) as u64; // watches on about 1 day in `habit`
        for day in 0..*since_days {
            if rng.below(habit) != 0 {
                continue;
            }
            for _ in 0..(1 + rng.below(2)) {
                let (class_id, category) = &classes[rng.below(classes.len() as u64) as usize];
                let started_at =
                    now - Duration::days(day) - Duration::minutes(rng.below(600) as i64 + 30);
                pending.push(Pending {
                    // One batch per member: a batch lands (and is counted) once.
                    batch_id: BatchId(member_id.0),
                    likely_new: true,
                    row: ChEvent {
                        client_id: client.id,
                        event_id: Uuid::new_v4(),
                        member_id: *member_id,
                        class_id: class_id.clone(),
                        category: category.clone(),
                        started_at: started_at.with_timezone(&Utc),
                        local_date: started_at.with_timezone(&tz).date_naive(),
                        watched_seconds: 300 + rng.below(3000) as u32,
                        received_at: now,
                    },
                });
            }
        }
    }
    let mut ch = ClickHouse::from_config(&ctx.config);
    ch.detect_version().await.map_err(|e| {
        CliError::failed(
            "SERVICE_UNAVAILABLE",
            format!("clickhouse is unavailable: {e}"),
        )
    })?;
    // Chunks never split a member's batch: a batch is landed (and counted) exactly once.
    let mut chunks: Vec<&[Pending]> = Vec::new();
    let mut start = 0;
    while start < pending.len() {
        let mut end = (start + 5000).min(pending.len());
        while end < pending.len() && pending[end].batch_id == pending[end - 1].batch_id {
            end += 1;
        }
        chunks.push(&pending[start..end]);
        start = end;
    }
    // Through the worker's own landing (claim, insert, profiles, count), a chunk at a time.
    for chunk in chunks {
        pipeline::land_pending(&ctx.pool, &ch, chunk).await?;
    }
    report.note(format!(
        "activity: {MEMBERS} members, {} vouchers, 6 products, 2 content strings, {} watch events over {DAYS} days",
        MEMBERS + 20,
        pending.len()
    ));
    Ok(())
}
