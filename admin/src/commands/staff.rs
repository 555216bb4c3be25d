//! `portal-admin staff create|deactivate|set-role`.

use portal_shared::domain::auth::Role;
use portal_shared::domain::ids::StaffId;
use portal_shared::pg::audit::Actor;
use portal_shared::pg::staff::{self, NewStaff, StaffChange, StaffRow};
use portal_shared::AppError;
use serde_json::json;
use sqlx::PgPool;

use super::{announce, resolve_client, Ctx};
use crate::cli::StaffCreateArgs;
use crate::error::CliResult;
use crate::output::{self, Outcome};

pub fn parse_role(value: &str) -> Result<Role, AppError> {
    Role::parse(&value.trim().to_ascii_lowercase()).ok_or_else(|| {
        AppError::validation("role", format!("must be admin or viewer (got {value:?})"))
    })
}

pub async fn create(ctx: &Ctx, args: StaffCreateArgs) -> CliResult<Outcome> {
    let role = parse_role(&args.role)?;
    let client = resolve_client(&ctx.pool, &args.client).await?;
    let id = staff::create(
        &ctx.pool,
        NewStaff {
            client_id: client.id,
            email: &args.email,
            name: &args.name,
            password: &args.password,
            role,
        },
    )
    .await?;
    Ok(Outcome::new(
        json!({ "id": id }),
        format!(
            "created {} {} for client {} ({})\nid: {id}",
            role.as_str(),
            args.email.trim().to_lowercase(),
            client.slug,
            client.id
        ),
    ))
}

pub async fn deactivate(ctx: &Ctx, value: &str) -> CliResult<Outcome> {
    let s = resolve_staff(&ctx.pool, value).await?;
    let change = staff::deactivate(&ctx.pool, s.client_id, s.id, Actor::System).await?;
    let notice = announce_change(ctx, &change).await;
    let what = if change.was_active {
        "deactivated"
    } else {
        "already inactive"
    };
    Ok(Outcome::new(
        json!({
            "id": change.id,
            "clientId": change.client_id,
            "active": false,
            "sessionsRevoked": change.sessions_revoked,
        }),
        format!(
            "staff {} ({}) of client {} {what}; {} session token(s) revoked; {notice}",
            change.email, change.id, change.client_id, change.sessions_revoked
        ),
    ))
}

pub async fn set_role(ctx: &Ctx, value: &str, role: &str) -> CliResult<Outcome> {
    let role = parse_role(role)?;
    let s = resolve_staff(&ctx.pool, value).await?;
    let change = staff::set_role(&ctx.pool, s.client_id, s.id, role, Actor::System).await?;
    let notice = announce_change(ctx, &change).await;
    Ok(Outcome::new(
        json!({
            "id": change.id,
            "clientId": change.client_id,
            "role": change.role.as_str(),
            "previousRole": change.role_before.as_str(),
        }),
        format!(
            "staff {} ({}) of client {}: role {} → {}; {notice}",
            change.email,
            change.id,
            change.client_id,
            change.role_before.as_str(),
            change.role.as_str()
        ),
    ))
}

/// A staff member by id or (platform-wide unique) login email. Unknown → NOT_FOUND.
async fn resolve_staff(pool: &PgPool, value: &str) -> Result<StaffRow, AppError> {
    let value = value.trim();
    let found = match value.parse::<uuid::Uuid>() {
        Ok(id) => portal_shared::pg::unscoped::staff_by_id(pool, StaffId(id)).await?,
        Err(_) if value.contains('@') => {
            portal_shared::pg::unscoped::staff_for_login(pool, &staff::normalize_email(value)?)
                .await?
        }
        Err(_) => {
            return Err(AppError::validation(
                "staff",
                format!("must be a staff id (UUID) or login email (got {value:?})"),
            ))
        }
    };
    found.ok_or_else(|| AppError::NotFound(format!("no staff account {value:?}")))
}

/// Tells running API instances to forget their cached status of this member; warns when the
/// client is left without an active admin.
async fn announce_change(ctx: &Ctx, change: &StaffChange) -> String {
    if change.active_admins == 0 {
        output::warn(&format!(
            "client {} has no active admin left; create one with `portal-admin staff create`",
            change.client_id
        ));
    }
    let channel = staff::change_channel(&ctx.config.redis_namespace);
    match announce(&ctx.config, &channel, &change.id.to_string()).await {
        Ok(listeners) => format!("announced to running API instances ({listeners} listening)"),
        Err(e) => {
            output::warn(&format!(
                "could not announce the change on Redis ({e}); running API instances apply it within 10 s"
            ));
            "not announced (Redis unreachable)".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!(parse_role("admin").unwrap(), Role::Admin);
        assert_eq!(parse_role(" Viewer ").unwrap(), Role::Viewer);
        assert!(parse_role("owner")
            .unwrap_err()
            .to_string()
            .starts_with("role: must be admin or viewer"));
    }
}
