//! `portal-admin client create`.

use portal_shared::pg::clients::{self, NewClient};
use portal_shared::AppError;
use serde_json::{json, Value};

use super::Ctx;
use crate::cli::ClientCreateArgs;
use crate::error::CliResult;
use crate::output::Outcome;

pub async fn create(ctx: &Ctx, args: ClientCreateArgs) -> CliResult<Outcome> {
    let new = NewClient {
        name: args.name,
        slug: args.slug.trim().to_string(),
        timezone: args.timezone.trim().to_string(),
        branding: json_option("branding", args.branding.as_deref())?,
        features: json_option("features", args.features.as_deref())?,
    };
    let client = clients::create(&ctx.pool, &new).await?;
    Ok(Outcome::new(
        json!({ "id": client.id }),
        format!(
            "created client {:?} (slug {}, timezone {})\nid: {}",
            client.name, client.slug, client.timezone, client.id
        ),
    ))
}

/// Parses an optional JSON option (absent → `{}`); the repository checks that it is an object.
pub fn json_option(field: &str, raw: Option<&str>) -> Result<Value, AppError> {
    match raw {
        None => Ok(json!({})),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| AppError::validation(field, format!("is not valid JSON ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_options_default_to_an_empty_object() {
        assert_eq!(json_option("branding", None).unwrap(), json!({}));
        assert_eq!(
            json_option("branding", Some(r#"{"a":1}"#)).unwrap(),
            json!({"a": 1})
        );
        let e = json_option("branding", Some("{nope")).unwrap_err();
        assert!(
            e.to_string().starts_with("branding: is not valid JSON"),
            "{e}"
        );
    }
}
