//! Partners (clients of the white-label app).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{types::Json, PgPool};

use crate::domain::ids::ClientId;
use crate::error::{AppError, AppResult, FieldError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub slug: String,
    /// Decoded when the row is read; serialised as its IANA name.
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: chrono_tz::Tz,
    pub branding: Json<Value>,
    pub features: Json<Value>,
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// The client's timezone.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone
    }
}

fn serialize_tz<S: serde::Serializer>(tz: &chrono_tz::Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

/// A stored timezone name, decoded: names are validated on write (and the column is only written
/// through [`create`]), so a value chrono-tz does not know can only be one it has since dropped;
/// that client's days are then counted in UTC, with a warning, rather than failing every read.
fn parse_tz(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap_or_else(|_| {
        tracing::warn!(timezone = name, "unknown stored client timezone; using UTC");
        chrono_tz::UTC
    })
}

/// The client's timezone alone: what most partner reads need of the client.
pub async fn timezone(pool: &PgPool, id: ClientId) -> AppResult<chrono_tz::Tz> {
    let name = sqlx::query_scalar!("SELECT timezone FROM clients WHERE id = $1", id as ClientId)
        .fetch_optional(pool)
        .await?;
    name.map(|n| parse_tz(&n))
        .ok_or_else(|| AppError::not_found("client"))
}

/// The timezones of several clients (the event pipeline's lookup for the clients of a flush).
pub async fn timezones(
    pool: &PgPool,
    ids: &[ClientId],
) -> AppResult<Vec<(ClientId, chrono_tz::Tz)>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: ClientId", timezone FROM clients WHERE id = ANY($1)"#,
        ids as &[ClientId]
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, parse_tz(&r.timezone)))
        .collect())
}

/// Today's date in `tz`.
pub fn today(tz: chrono_tz::Tz) -> chrono::NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub branding: Value,
    pub features: Value,
}

pub fn validate(new: &NewClient) -> AppResult<()> {
    let mut errors = Vec::new();
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let slug_ok = (1..=64).contains(&new.slug.len())
        && new
            .slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !new.slug.starts_with('-')
        && !new.slug.ends_with('-');
    if !slug_ok {
        errors.push(FieldError::new(
            "slug",
            "must be 1 to 64 of a-z, 0-9 and '-', not starting or ending with '-'",
        ));
    }
    if new.timezone.parse::<chrono_tz::Tz>().is_err() {
        errors.push(FieldError::new(
            "timezone",
            "must be an IANA timezone name such as Europe/Berlin",
        ));
    }
    if !new.branding.is_object() {
        errors.push(FieldError::new("branding", "must be a JSON object"));
    }
    if !new.features.is_object() {
        errors.push(FieldError::new("features", "must be a JSON object"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation_many(errors))
    }
}

/// A client row as stored, before its timezone is decoded into [`Client`].
struct Stored {
    id: ClientId,
    name: String,
    slug: String,
    timezone: String,
    branding: Json<Value>,
    features: Json<Value>,
    created_at: DateTime<Utc>,
}

impl From<Stored> for Client {
    fn from(r: Stored) -> Self {
        Client {
            id: r.id,
            name: r.name,
            slug: r.slug,
            timezone: parse_tz(&r.timezone),
            branding: r.branding,
            features: r.features,
            created_at: r.created_at,
        }
    }
}

pub async fn create(pool: &PgPool, new: &NewClient) -> AppResult<Client> {
    validate(new)?;
    sqlx::query_as!(
        Stored,
        r#"INSERT INTO clients (id, name, slug, timezone, branding, features)
           VALUES ($1, $2, $3, $4, $5, $6)
           RETURNING id AS "id: ClientId", name, slug, timezone,
                     branding AS "branding: Json<Value>", features AS "features: Json<Value>",
                     created_at"#,
        ClientId::new_v7() as ClientId,
        new.name.trim(),
        &new.slug,
        &new.timezone,
        Json(&new.branding) as _,
        Json(&new.features) as _,
    )
    .fetch_one(pool)
    .await
    .map(Client::from)
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict { .. } => AppError::conflict(
            "SLUG_TAKEN",
            format!("a client with slug {:?} already exists", new.slug),
        ),
        other => other,
    })
}

pub async fn get(pool: &PgPool, id: ClientId) -> AppResult<Client> {
    sqlx::query_as!(
        Stored,
        r#"SELECT id AS "id: ClientId", name, slug, timezone,
                  branding AS "branding: Json<Value>", features AS "features: Json<Value>",
                  created_at
           FROM clients WHERE id = $1"#,
        id as ClientId
    )
    .fetch_optional(pool)
    .await?
    .map(Client::from)
    .ok_or_else(|| AppError::not_found("client"))
}

pub async fn find_by_slug(pool: &PgPool, slug: &str) -> AppResult<Option<Client>> {
    Ok(sqlx::query_as!(
        Stored,
        r#"SELECT id AS "id: ClientId", name, slug, timezone,
                  branding AS "branding: Json<Value>", features AS "features: Json<Value>",
                  created_at
           FROM clients WHERE slug = $1"#,
        slug
    )
    .fetch_optional(pool)
    .await?
    .map(Client::from))
}

/// Vouchers issued and members registered on the client's days `start..=end` (day bounds computed
/// by Postgres in the client's timezone, DST gaps included; the comparisons stay on the indexed
/// timestamps).
pub async fn issued_and_registered(
    db: &PgPool,
    client_id: ClientId,
    start: NaiveDate,
    end: NaiveDate,
) -> AppResult<(i64, i64)> {
    let r = sqlx::query!(
        r#"WITH b AS (
             SELECT ($2::date::timestamp AT TIME ZONE c.timezone) AS lo,
                    (($3::date + 1)::timestamp AT TIME ZONE c.timezone) AS hi
             FROM clients c WHERE c.id = $1
         )
         SELECT (SELECT count(*) FROM vouchers v, b
                 WHERE v.client_id = $1 AND v.created_at >= b.lo AND v.created_at < b.hi)
                    AS "issued!",
                (SELECT count(*) FROM members m, b
                 WHERE m.client_id = $1 AND m.registered_at >= b.lo AND m.registered_at < b.hi)
                    AS "registered!""#,
        client_id as ClientId,
        start,
        end
    )
    .fetch_one(db)
    .await?;
    Ok((r.issued, r.registered))
}
