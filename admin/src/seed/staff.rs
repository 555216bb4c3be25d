//! The demo staff accounts, created if absent. An existing account is kept; if it no longer matches
//! what the demo promises (other client, role, password, deactivated) the operator is told.

use portal_shared::domain::auth::verify_password;
use portal_shared::pg::clients::Client;
use portal_shared::pg::staff::{self, NewStaff};
use portal_shared::AppError;

use super::{DemoStaff, Report, DEMO_PASSWORD};
use crate::commands::Ctx;
use crate::error::CliResult;
use crate::output;

pub async fn ensure(
    ctx: &Ctx,
    client: &Client,
    who: DemoStaff,
    report: &mut Report,
) -> CliResult<()> {
    let role = who.role.as_str();
    if let Some(existing) =
        portal_shared::pg::unscoped::staff_for_login(&ctx.pool, who.email).await?
    {
        if existing.client_id != client.id {
            return Err(AppError::conflict(
                "EMAIL_TAKEN",
                format!(
                    "staff account {} already exists for another client ({}); the demo cannot use it",
                    who.email, existing.client_id
                ),
            )
            .into());
        }
        if existing.role() != who.role {
            output::warn(&format!(
                "{} has role {}, not {role}",
                who.email,
                existing.role.as_str()
            ));
        }
        if !existing.active {
            output::warn(&format!("{} is deactivated and cannot log in", who.email));
        }
        if !verify_password(
            DEMO_PASSWORD.to_string(),
            Some(existing.password_hash.clone()),
        )
        .await?
        {
            output::warn(&format!(
                "{}'s password was changed; it is no longer {DEMO_PASSWORD}",
                who.email
            ));
        }
        report.note(format!("staff {} ({role}): already present", who.email));
        return Ok(());
    }
    let created = staff::create(
        &ctx.pool,
        NewStaff {
            client_id: client.id,
            email: who.email,
            name: who.name,
            password: DEMO_PASSWORD,
            role: who.role,
        },
    )
    .await;
    match created {
        Ok(_) => report.note(format!("staff {} ({role}): created", who.email)),
        // Another seed-demo run created it a moment ago: fine if it is ours.
        Err(AppError::Conflict { .. })
            if portal_shared::pg::unscoped::staff_for_login(&ctx.pool, who.email)
                .await?
                .is_some_and(|s| s.client_id == client.id) =>
        {
            report.note(format!("staff {} ({role}): already present", who.email));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
