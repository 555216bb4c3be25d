//! The demo client (slug `demo-studio`), created if absent and otherwise left as it is.

use portal_shared::pg::clients::{self, Client, NewClient};
use portal_shared::AppError;

use super::{demo_branding, Report, DEMO_NAME, DEMO_SLUG, DEMO_TIMEZONE};
use crate::commands::Ctx;
use crate::error::CliResult;

pub async fn ensure(ctx: &Ctx, report: &mut Report) -> CliResult<Client> {
    if let Some(client) = clients::find_by_slug(&ctx.pool, DEMO_SLUG).await? {
        report.note(format!(
            "client {DEMO_SLUG} ({}): already present",
            client.id
        ));
        return Ok(client);
    }
    let new = NewClient {
        name: DEMO_NAME.to_string(),
        slug: DEMO_SLUG.to_string(),
        timezone: DEMO_TIMEZONE.to_string(),
        branding: demo_branding(),
        features: serde_json::json!({}),
    };
    match clients::create(&ctx.pool, &new).await {
        Ok(client) => {
            report.note(format!("client {DEMO_SLUG} ({}): created", client.id));
            Ok(client)
        }
        // Another seed-demo run created it a moment ago.
        Err(AppError::Conflict { .. }) => Ok(clients::find_by_slug(&ctx.pool, DEMO_SLUG)
            .await?
            .ok_or_else(|| AppError::internal("demo client vanished after a slug conflict"))?),
        Err(e) => Err(e.into()),
    }
}
