//! `portal-admin api-key create|revoke|list`.

use chrono::{DateTime, SecondsFormat, Utc};
use portal_shared::pg::api_keys::{self, revocation_channel};
use portal_shared::AppError;
use serde_json::json;

use super::{announce, parse_uuid, resolve_client, Ctx};
use crate::error::CliResult;
use crate::output::{self, Outcome};

const MAX_NAME_CHARS: usize = 200;

pub async fn create(ctx: &Ctx, client: &str, name: &str) -> CliResult<Outcome> {
    let name = name.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::validation("name", "must be at most 200 characters").into());
    }
    let client = resolve_client(&ctx.pool, client).await?;
    let created = api_keys::create(&ctx.pool, client.id, name).await?;
    Ok(Outcome::new(
        json!({
            "id": created.id,
            "key": created.key,
            "prefix": created.prefix,
            "clientId": created.client_id,
        }),
        format!(
            "created API key {} for client {} ({})\n\n    {}\n\nThis is the only time the key is shown; it is stored only as a hash.",
            created.id, client.slug, client.id, created.key
        ),
    ))
}

pub async fn revoke(ctx: &Ctx, id: &str) -> CliResult<Outcome> {
    let id = parse_uuid("id", id)?;
    let (key, hash) = portal_shared::pg::unscoped::revoke_api_key(&ctx.pool, id.into()).await?;
    let revoked_at = key.revoked_at.unwrap_or_else(Utc::now);
    let channel = revocation_channel(&ctx.config.redis_namespace);
    let notice = match announce(&ctx.config, &channel, &hex::encode(hash)).await {
        Ok(listeners) => format!("announced to running API instances ({listeners} listening)"),
        Err(e) => {
            output::warn(&format!(
                "could not announce the revocation on Redis ({e}); running API instances will drop the key within the cache TTL ({} s)",
                ctx.config.api_key_cache_ttl.as_secs()
            ));
            "not announced (Redis unreachable)".to_string()
        }
    };
    Ok(Outcome::new(
        json!({ "id": key.id, "revokedAt": key.revoked_at }),
        format!(
            "revoked API key {} ({}…) of client {} at {}; {notice}",
            key.id,
            key.prefix,
            key.client_id,
            timestamp(revoked_at)
        ),
    ))
}

pub async fn list(ctx: &Ctx, client: &str) -> CliResult<Outcome> {
    let client = resolve_client(&ctx.pool, client).await?;
    let keys = api_keys::list(&ctx.pool, client.id).await?;
    let json_keys: Vec<_> = keys
        .iter()
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "createdAt": k.created_at,
                "lastUsedAt": k.last_used_at,
                "revokedAt": k.revoked_at,
            })
        })
        .collect();
    let mut text = format!(
        "{} API key(s) of client {} ({})",
        keys.len(),
        client.slug,
        client.id
    );
    for k in &keys {
        let status = match k.revoked_at {
            Some(t) => format!("revoked {}", timestamp(t)),
            None => "active".to_string(),
        };
        let used = k
            .last_used_at
            .map_or_else(|| "never".to_string(), timestamp);
        text.push_str(&format!(
            "\n  {}  {}…  name={:?}  created {}  last used {}  {}",
            k.id,
            k.prefix,
            k.name,
            timestamp(k.created_at),
            used,
            status
        ));
    }
    Ok(Outcome::new(json!({ "keys": json_keys }), text))
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
