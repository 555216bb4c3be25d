//! The demo API key. Plaintext keys are not stored, so the key is reused only when the credentials
//! file still holds it, it belongs to the demo client and it still authenticates; otherwise a new
//! one is created.

use std::time::Duration;

use portal_shared::pg::api_keys::{self, ApiKeyCache};
use portal_shared::pg::clients::Client;
use portal_shared::AppError;
use serde_json::Value;

use super::{Report, DEMO_API_KEY_NAME};
use crate::commands::Ctx;
use crate::error::CliResult;

pub async fn ensure(
    ctx: &Ctx,
    client: &Client,
    saved: Option<&Value>,
    report: &mut Report,
) -> CliResult<String> {
    match reusable(ctx, client, saved).await? {
        Ok(key) => {
            report.note("api key: reused from the credentials file");
            Ok(key)
        }
        Err(why) => {
            let created = api_keys::create(&ctx.pool, client.id, DEMO_API_KEY_NAME).await?;
            report.note(format!("api key {}: created ({why})", created.id));
            Ok(created.key)
        }
    }
}

/// `Ok(key)` if the saved key can be reused, else `Err(reason)`. Database failures are errors.
async fn reusable(
    ctx: &Ctx,
    client: &Client,
    saved: Option<&Value>,
) -> CliResult<Result<String, &'static str>> {
    let Some(saved) = saved else {
        return Ok(Err("no saved credentials"));
    };
    let key = saved.get("apiKey").and_then(Value::as_str);
    let client_id = saved.get("clientId").and_then(Value::as_str);
    let (Some(key), Some(client_id)) = (key, client_id) else {
        return Ok(Err("the credentials file has no apiKey/clientId"));
    };
    if client_id.parse().ok() != Some(client.id) {
        return Ok(Err("the saved key was for another demo client"));
    }
    match ApiKeyCache::new(Duration::from_secs(1))
        .authenticate(&ctx.pool, key)
        .await
    {
        Ok(principal) if principal.client_id == client.id => Ok(Ok(key.to_string())),
        Ok(_) => Ok(Err("the saved key belongs to another client")),
        Err(AppError::Unauthorized(_)) => Ok(Err("the saved key is revoked or unknown")),
        Err(e) => Err(e.into()),
    }
}
