//! Content strings (About, Privacy, …): HTML rendered by the app, sanitized on write.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::domain::ids::{ClientId, StaffId};
use crate::domain::json::FromJson;
use crate::error::{AppError, AppResult, FieldError};
use crate::pg::audit;

pub const MAX_KEYS: i64 = 100;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

pub fn valid_key(key: &str) -> bool {
    key.strip_prefix("st_").is_some_and(|rest| {
        (1..=64).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    })
}

/// Schemes a link (`href`, and `cite`) may use; every other URL is dropped.
pub const LINK_SCHEMES: [&str; 3] = ["https", "http", "mailto"];
/// The one scheme an image (`src`) may use.
pub const IMAGE_SCHEME: &str = "https";

/// Removes script, style, event-handler attributes and `javascript:` URLs; ordinary markup stays.
/// URLs must be absolute (relative and protocol-relative ones are dropped): links may point to
/// `https:`, `http:` or `mailto:`, images only to `https:`. A refused URL loses its attribute;
/// the element and its text stay.
pub fn sanitize(html: &str) -> String {
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer"))
        .url_schemes(LINK_SCHEMES.into_iter().collect())
        .url_relative(ammonia::UrlRelative::Deny)
        // Runs after the scheme and relative-URL checks above, on the attributes they kept:
        // `src` (images) narrows to https; `cite` is a URL ammonia does not check itself.
        .attribute_filter(|_element, attribute, value| {
            let scheme = || {
                ammonia::Url::parse(value)
                    .ok()
                    .map(|u| u.scheme().to_owned())
            };
            let allowed = match attribute {
                "src" => scheme().is_some_and(|s| s == IMAGE_SCHEME),
                "cite" => scheme().is_some_and(|s| LINK_SCHEMES.contains(&s.as_str())),
                _ => true,
            };
            allowed.then_some(std::borrow::Cow::Borrowed(value))
        })
        .clean(html)
        .to_string()
}

/// Validates an update body and returns the sanitized entries.
/// The body of `PUT /partner/strings` and of its preview: content-string keys to HTML values,
/// each checked and sanitized ([`prepare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringsUpdate(pub Vec<(String, String)>);

impl FromJson for StringsUpdate {
    fn from_json(body: &Value) -> AppResult<Self> {
        prepare(body).map(Self)
    }
}

impl salvo_oapi::ToSchema for StringsUpdate {
    fn to_schema(_: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        use salvo_oapi::schema::{BasicType, Object, Schema};
        salvo_oapi::RefOr::Type(Schema::Object(Box::new(
            Object::new()
                .schema_type(BasicType::Object)
                .property_names(
                    Object::new()
                        .schema_type(BasicType::String)
                        .pattern("^st_[a-z0-9_]{1,64}$"),
                )
                .additional_properties(
                    Object::new()
                        .schema_type(BasicType::String)
                        .max_length(MAX_VALUE_BYTES)
                        .description("HTML, at most 64 KiB (UTF-8); sanitized on write"),
                )
                .max_properties(MAX_KEYS as usize)
                .description(
                    "Keys to merge into the client's strings; other keys stay as they are.",
                )
                .examples([serde_json::json!({
                    "st_aboutus": "<h1>About Us</h1><p>Updated content...</p>"
                })]),
        )))
    }
}

pub fn prepare(body: &Value) -> AppResult<Vec<(String, String)>> {
    let Some(map): Option<&Map<String, Value>> = body.as_object() else {
        return Err(AppError::bad_request(
            "body must be a JSON object of string keys to HTML strings",
        ));
    };
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(map.len());
    if map.len() as i64 > MAX_KEYS {
        errors.push(FieldError::new("body", format!("at most {MAX_KEYS} keys")));
    }
    for (k, v) in map {
        if !valid_key(k) {
            errors.push(FieldError::new(
                k.clone(),
                "key must match st_[a-z0-9_]{1,64}",
            ));
            continue;
        }
        let Some(s) = v.as_str() else {
            errors.push(FieldError::new(k.clone(), "value must be a string"));
            continue;
        };
        if s.len() > MAX_VALUE_BYTES {
            errors.push(FieldError::new(k.clone(), "value must be at most 64 KiB"));
            continue;
        }
        let clean = sanitize(s);
        if clean.len() > MAX_VALUE_BYTES {
            errors.push(FieldError::new(k.clone(), "value must be at most 64 KiB"));
            continue;
        }
        out.push((k.clone(), clean));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::validation_many(errors))
    }
}

pub async fn get_all(pool: &PgPool, client_id: ClientId) -> AppResult<BTreeMap<String, String>> {
    let rows = sqlx::query!(
        "SELECT key, value FROM content_strings WHERE client_id = $1 ORDER BY key",
        client_id as ClientId,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
}

/// Merges `entries` into the client's strings (one transaction, audited) and returns all strings.
pub async fn merge(
    pool: &PgPool,
    client_id: ClientId,
    entry: audit::Entry,
    staff_id: Option<StaffId>,
    entries: &[(String, String)],
) -> AppResult<BTreeMap<String, String>> {
    let mut tx = pool.begin().await?;
    // Serialises concurrent updates of one client so the key limit holds.
    sqlx::query!(
        "SELECT 1 AS one FROM clients WHERE id = $1 FOR UPDATE",
        client_id as ClientId,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<&str> = entries.iter().map(|(_, v)| v.as_str()).collect();
    sqlx::query!(
        "INSERT INTO content_strings (client_id, key, value, updated_by)
         SELECT $1, k, v, $4 FROM UNNEST($2::text[], $3::text[]) AS t(k, v)
         ON CONFLICT (client_id, key) DO UPDATE
           SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()",
        client_id as ClientId,
        &keys[..] as &[&str],
        &values[..] as &[&str],
        staff_id as Option<StaffId>,
    )
    .execute(&mut *tx)
    .await?;
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM content_strings WHERE client_id = $1"#,
        client_id as ClientId,
    )
    .fetch_one(&mut *tx)
    .await?;
    if count > MAX_KEYS {
        return Err(AppError::Unprocessable {
            code: "TOO_MANY_STRINGS",
            message: format!("a client can have at most {MAX_KEYS} strings"),
        });
    }
    let entry = entry.details(serde_json::json!({ "keys": keys }));
    audit::record(&mut *tx, &entry).await?;
    tx.commit().await?;
    get_all(pool, client_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_pattern() {
        assert!(valid_key("st_aboutus"));
        assert!(valid_key("st_privacy_policy_2"));
        assert!(!valid_key("st_"));
        assert!(!valid_key("st_About"));
        assert!(!valid_key("aboutus"));
        assert!(!valid_key(&format!("st_{}", "a".repeat(65))));
    }

    #[test]
    fn scripts_handlers_and_javascript_urls_are_removed() {
        let dirty = r#"<h1 onclick="steal()">About</h1><script>alert(1)</script><style>p{}</style><a href="javascript:alert(1)">x</a><a href="https://ok.example">ok</a><p>text</p>"#;
        let clean = sanitize(dirty);
        assert!(!clean.contains("script"), "{clean}");
        assert!(!clean.contains("onclick"), "{clean}");
        assert!(!clean.contains("javascript:"), "{clean}");
        assert!(!clean.contains("<style"), "{clean}");
        assert!(clean.contains("<h1>About</h1>"), "{clean}");
        assert!(clean.contains("https://ok.example"), "{clean}");
        assert!(clean.contains("<p>text</p>"), "{clean}");
    }

    #[test]
    fn images_come_only_from_https() {
        for src in [
            "http://img.example/a.png",
            "HTTP://img.example/a.png",
            "//img.example/a.png",
            "/a.png",
            "a.png",
            "data:image/png;base64,AAAA",
            "mailto:x@example.com",
            "ftp://img.example/a.png",
            "javascript:alert(1)",
        ] {
            let clean = sanitize(&format!(r#"<img src="{src}" alt="pic">"#));
            assert_eq!(clean, r#"<img alt="pic">"#, "src={src}");
        }
        assert_eq!(
            sanitize(r#"<img src="https://img.example/a.png" alt="pic">"#),
            r#"<img src="https://img.example/a.png" alt="pic">"#
        );
        assert_eq!(
            sanitize(r#"<img src="HTTPS://img.example/a.png">"#),
            r#"<img src="HTTPS://img.example/a.png">"#
        );
    }

    #[test]
    fn links_are_absolute_https_http_or_mailto() {
        for href in [
            "https://ok.example/p",
            "http://ok.example/p",
            "mailto:hello@ok.example",
        ] {
            let clean = sanitize(&format!(r#"<a href="{href}">x</a>"#));
            assert_eq!(
                clean,
                format!(r#"<a href="{href}" rel="noopener noreferrer">x</a>"#)
            );
        }
        for href in [
            "//evil.example/p",
            "/relative/path",
            "relative.html",
            "#top",
            "?q=1",
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "ftp://files.example/x",
            "tel:+4912345",
            "vbscript:msgbox(1)",
        ] {
            let clean = sanitize(&format!(r#"<a href="{href}">x</a>"#));
            assert_eq!(
                clean, r#"<a rel="noopener noreferrer">x</a>"#,
                "href={href}"
            );
        }
        // `cite` is held to the same rule.
        assert_eq!(
            sanitize(r#"<blockquote cite="/rel">q</blockquote>"#),
            "<blockquote>q</blockquote>"
        );
        assert_eq!(
            sanitize(r#"<blockquote cite="https://src.example/">q</blockquote>"#),
            r#"<blockquote cite="https://src.example/">q</blockquote>"#
        );
    }
}
