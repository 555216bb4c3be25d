//! `portal-admin staff create`.

use portal_shared::auth::Role;
use portal_shared::repo::staff::{self, NewStaff};
use portal_shared::AppError;
use serde_json::json;

use super::{resolve_client, Ctx};
use crate::cli::StaffCreateArgs;
use crate::error::CliResult;
use crate::output::Outcome;

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
