//! One module per command group. Each command returns an [`Outcome`]; `main` prints it.

pub mod api_key;
pub mod classes;
pub mod client;
pub mod migrate;
pub mod staff;

use portal_shared::config::Config;
use portal_shared::pg::clients::{self, Client};
use portal_shared::AppError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cli::Command;
use crate::error::CliResult;
use crate::output::Outcome;

/// What every command gets: the configuration and a lazily connecting Postgres pool.
pub struct Ctx {
    pub config: Config,
    pub pool: PgPool,
}

pub async fn run(ctx: &Ctx, command: Command) -> CliResult<Outcome> {
    use crate::cli::{ApiKeyCommand, ClassesCommand, ClientCommand, StaffCommand};
    match command {
        Command::Migrate => migrate::run(ctx).await,
        Command::Client(ClientCommand::Create(args)) => client::create(ctx, args).await,
        Command::ApiKey(ApiKeyCommand::Create { client, name }) => {
            api_key::create(ctx, &client, &name).await
        }
        Command::ApiKey(ApiKeyCommand::Revoke { id }) => api_key::revoke(ctx, &id).await,
        Command::ApiKey(ApiKeyCommand::List { client }) => api_key::list(ctx, &client).await,
        Command::Staff(StaffCommand::Create(args)) => staff::create(ctx, args).await,
        Command::Staff(StaffCommand::Deactivate { staff }) => staff::deactivate(ctx, &staff).await,
        Command::Staff(StaffCommand::SetRole { staff, role }) => {
            staff::set_role(ctx, &staff, &role).await
        }
        Command::Classes(ClassesCommand::Import { file }) => classes::import(ctx, &file).await,
        Command::SeedDemo(args) => crate::seed::demo(ctx, &args.credentials_file).await,
    }
}

/// PUBLISHes `payload` on `channel` (5 s at most); returns how many API instances heard it.
pub async fn announce(config: &Config, channel: &str, payload: &str) -> Result<i64, String> {
    let publish = async {
        let mut conn = portal_shared::jobs::redis_lazy(config.redis_url.expose())?;
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), publish).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Tells running API instances that what every client's answers show has changed (the class
/// catalogue, the demo tenant), so they drop their cached dashboard, analytics, funnel, billing
/// and member-list answers; returns a note for the output. A failure is a warning: the change stands, and the
/// instances' read-cache lifetime (`READ_CACHE_TTL_SECS`) is the fallback.
pub async fn announce_all_clients_changed(config: &Config) -> String {
    let channel = portal_shared::announce::clients_changed_channel(&config.redis_namespace);
    let payload = portal_shared::announce::ChangedClients::All.payload();
    match announce(config, &channel, &payload).await {
        Ok(listeners) => format!("announced to running API instances ({listeners} listening)"),
        Err(e) => {
            crate::output::warn(&format!(
                "could not announce the change on Redis ({e}); running API instances show it within {} s",
                config.read_cache_ttl.as_secs()
            ));
            "not announced (Redis unreachable)".to_string()
        }
    }
}

/// Parses a UUID argument; a malformed one is a validation error naming the option.
pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, AppError> {
    value
        .trim()
        .parse()
        .map_err(|_| AppError::validation(field, format!("must be a UUID (got {value:?})")))
}

/// Looks a client up by id, or by slug when the value is not a UUID. Unknown → NOT_FOUND.
pub async fn resolve_client(pool: &PgPool, value: &str) -> Result<Client, AppError> {
    let value = value.trim();
    if let Ok(id) = value.parse::<Uuid>() {
        return clients::get(pool, id.into()).await.map_err(|e| match e {
            AppError::NotFound(_) => AppError::NotFound(format!("no client with id {id}")),
            other => other,
        });
    }
    let looks_like_slug = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !looks_like_slug {
        return Err(AppError::validation(
            "client",
            format!("must be a client id (UUID) or slug (got {value:?})"),
        ));
    }
    clients::find_by_slug(pool, value)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no client with slug {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_uuids_name_the_field() {
        let e = parse_uuid("id", "nope").unwrap_err();
        assert_eq!(e.code(), "VALIDATION_ERROR");
        assert!(e.to_string().starts_with("id: must be a UUID"));
        assert!(parse_uuid("id", " 0190b3f0-0000-7000-8000-000000000000 ").is_ok());
    }
}
