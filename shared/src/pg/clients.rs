//! Partners (clients of the white-label app).

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{types::Json, FromRow, PgPool};

use crate::domain::ids::ClientId;
use crate::error::{AppError, AppResult, FieldError};

#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub branding: Json<Value>,
    pub features: Json<Value>,
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// The client's timezone (validated on write; UTC if a stored value ever fails to parse).
    pub fn tz(&self) -> chrono_tz::Tz {
        parse_tz(&self.timezone)
    }
}

fn parse_tz(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

/// The client's timezone alone: what most partner reads need of the client.
pub async fn timezone(pool: &PgPool, id: ClientId) -> AppResult<chrono_tz::Tz> {
    let name: Option<String> = sqlx::query_scalar("SELECT timezone FROM clients WHERE id = $1")
        .bind(id)
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
    let rows: Vec<(ClientId, String)> =
        sqlx::query_as("SELECT id, timezone FROM clients WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, tz)| (id, parse_tz(&tz)))
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

pub async fn create(pool: &PgPool, new: &NewClient) -> AppResult<Client> {
    validate(new)?;
    sqlx::query_as::<_, Client>(
        "INSERT INTO clients (id, name, slug, timezone, branding, features)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, name, slug, timezone, branding, features, created_at",
    )
    .bind(ClientId::new_v7())
    .bind(new.name.trim())
    .bind(&new.slug)
    .bind(&new.timezone)
    .bind(Json(&new.branding))
    .bind(Json(&new.features))
    .fetch_one(pool)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict { .. } => AppError::conflict(
            "SLUG_TAKEN",
            format!("a client with slug {:?} already exists", new.slug),
        ),
        other => other,
    })
}

pub async fn get(pool: &PgPool, id: ClientId) -> AppResult<Client> {
    sqlx::query_as::<_, Client>(
        "SELECT id, name, slug, timezone, branding, features, created_at FROM clients WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("client"))
}

pub async fn find_by_slug(pool: &PgPool, slug: &str) -> AppResult<Option<Client>> {
    Ok(sqlx::query_as::<_, Client>(
        "SELECT id, name, slug, timezone, branding, features, created_at FROM clients WHERE slug = $1",
    )
    .bind(slug)
    .fetch_optional(pool)
    .await?)
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
    Ok(sqlx::query_as(
        "WITH b AS (
             SELECT ($2::date::timestamp AT TIME ZONE c.timezone) AS lo,
                    (($3::date + 1)::timestamp AT TIME ZONE c.timezone) AS hi
             FROM clients c WHERE c.id = $1
         )
         SELECT (SELECT count(*) FROM vouchers v, b
                 WHERE v.client_id = $1 AND v.created_at >= b.lo AND v.created_at < b.hi),
                (SELECT count(*) FROM members m, b
                 WHERE m.client_id = $1 AND m.registered_at >= b.lo AND m.registered_at < b.hi)",
    )
    .bind(client_id)
    .bind(start)
    .bind(end)
    .fetch_one(db)
    .await?)
}
