//! `portal-admin seed-demo`: an idempotent demo tenant for the README's run command.
//!
//! Every step lives in its own module, makes sure its part of the demo exists (creating only what is
//! missing) and notes what it did in the [`Report`]. Further steps (members, vouchers, products,
//! watch events) are added as modules called from [`demo`], and their results as fields of
//! [`DemoSummary`] (which is both the `--json` output and the credentials file).

pub mod activity;
pub mod api_key;
pub mod classes;
pub mod client;
pub mod credentials;
pub mod staff;

use std::path::Path;

use portal_shared::domain::auth::Role;
use serde::Serialize;

use crate::commands::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::Outcome;
use portal_shared::domain::ids::ClientId;

pub const DEMO_SLUG: &str = "demo-studio";
pub const DEMO_NAME: &str = "Demo Studio";
pub const DEMO_TIMEZONE: &str = "Europe/Berlin";
pub const DEMO_PASSWORD: &str = "demo-password-123";
pub const DEMO_CLASSES_CSV: &str = "demo/classes.csv";
pub const DEMO_API_KEY_NAME: &str = "demo";

pub fn demo_branding() -> serde_json::Value {
    serde_json::json!({
        "primaryColor": "#0E7C86",
        "logoUrl": "https://example.com/logo.png",
    })
}

/// A demo staff account (all share [`DEMO_PASSWORD`]).
#[derive(Debug, Clone, Copy)]
pub struct DemoStaff {
    pub email: &'static str,
    pub name: &'static str,
    pub role: Role,
}

pub const DEMO_ADMIN: DemoStaff = DemoStaff {
    email: "admin@demo-studio.example",
    name: "Demo Admin",
    role: Role::Admin,
};

pub const DEMO_VIEWER: DemoStaff = DemoStaff {
    email: "viewer@demo-studio.example",
    name: "Demo Viewer",
    role: Role::Viewer,
};

/// What `seed-demo` prints with `--json` and keeps in the credentials file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoSummary {
    pub client_id: ClientId,
    pub slug: String,
    pub admin_email: String,
    pub admin_password: String,
    pub viewer_email: String,
    pub viewer_password: String,
    pub api_key: String,
}

/// What each step did, for the text output.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<String>,
}

impl Report {
    pub fn note(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

pub async fn demo(ctx: &Ctx, credentials_file: &Path) -> CliResult<Outcome> {
    let mut report = Report::default();
    let saved = credentials::load(credentials_file)?;

    let client = client::ensure(ctx, &mut report).await?;
    staff::ensure(ctx, &client, DEMO_ADMIN, &mut report).await?;
    staff::ensure(ctx, &client, DEMO_VIEWER, &mut report).await?;
    classes::import(ctx, Path::new(DEMO_CLASSES_CSV), &mut report).await?;
    let api_key = api_key::ensure(ctx, &client, saved.as_ref(), &mut report).await?;
    activity::ensure(ctx, &client, &mut report).await?;
    // The catalogue and the demo's members, vouchers and events changed: running API instances
    // drop their cached answers.
    let notice = crate::commands::announce_all_clients_changed(&ctx.config).await;
    report.note(format!("cached answers: {notice}"));

    let summary = DemoSummary {
        client_id: client.id,
        slug: client.slug.clone(),
        admin_email: DEMO_ADMIN.email.to_string(),
        admin_password: DEMO_PASSWORD.to_string(),
        viewer_email: DEMO_VIEWER.email.to_string(),
        viewer_password: DEMO_PASSWORD.to_string(),
        api_key,
    };
    let json = serde_json::to_value(&summary)
        .map_err(|e| CliError::failed("INTERNAL_ERROR", format!("serialising the summary: {e}")))?;
    credentials::save(credentials_file, &json, saved.as_ref(), &mut report)?;

    let mut text = report.lines.join("\n");
    text.push_str(&format!(
        "\n\n{} is ready:\n  client id  {}\n  admin      {} / {}\n  viewer     {} / {}\n  API key    {}",
        client.name,
        summary.client_id,
        summary.admin_email,
        summary.admin_password,
        summary.viewer_email,
        summary.viewer_password,
        summary.api_key
    ));
    Ok(Outcome::new(json, text))
}
