//! Partner staff accounts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::auth::{hash_password, validate_password_strength, Role};
use crate::error::{AppError, AppResult, FieldError};

/// A staff row. `Debug` leaves the password hash out.
#[derive(Clone, FromRow)]
pub struct StaffRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub role: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for StaffRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffRow")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &crate::config::REDACTED)
            .field("role", &self.role)
            .field("active", &self.active)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

impl StaffRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaffProfile {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&StaffRow> for StaffProfile {
    fn from(s: &StaffRow) -> Self {
        Self {
            id: s.id,
            email: s.email.clone(),
            name: s.name.clone(),
            role: s.role(),
            created_at: s.created_at,
            last_login_at: s.last_login_at,
        }
    }
}

const SELECT: &str =
    "SELECT id, client_id, email, name, password_hash, role, active, created_at, last_login_at FROM staff";

pub fn normalize_email(email: &str) -> AppResult<String> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(e)
    } else {
        Err(AppError::validation(
            "email",
            "must be a valid email address",
        ))
    }
}

pub struct NewStaff<'a> {
    pub client_id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

pub async fn create(pool: &PgPool, new: NewStaff<'_>) -> AppResult<Uuid> {
    let email = normalize_email(new.email)?;
    validate_password_strength(new.password)?;
    if new.name.chars().count() > 200 {
        return Err(AppError::validation_many(vec![FieldError::new(
            "name",
            "must be at most 200 characters",
        )]));
    }
    let hash = hash_password(new.password.to_string()).await?;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO staff (id, client_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(new.client_id)
    .bind(&email)
    .bind(new.name.trim())
    .bind(hash)
    .bind(new.role.as_str())
    .execute(pool)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict { .. } => {
            AppError::conflict("EMAIL_TAKEN", "a staff account with this email already exists")
        }
        AppError::Unprocessable { .. } => AppError::not_found("client"),
        other => other,
    })?;
    Ok(id)
}

/// Login lookup: staff emails are unique platform-wide, so this is the one finder without a client.
pub async fn find_for_login(pool: &PgPool, email: &str) -> AppResult<Option<StaffRow>> {
    Ok(
        sqlx::query_as::<_, StaffRow>(sqlx::AssertSqlSafe(format!("{SELECT} WHERE email = $1")))
            .bind(email)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn get(pool: &PgPool, client_id: Uuid, id: Uuid) -> AppResult<StaffRow> {
    sqlx::query_as::<_, StaffRow>(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE client_id = $1 AND id = $2"
    )))
    .bind(client_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("staff"))
}

pub async fn touch_login(pool: &PgPool, client_id: Uuid, id: Uuid) -> AppResult<()> {
    sqlx::query("UPDATE staff SET last_login_at = now() WHERE client_id = $1 AND id = $2")
        .bind(client_id)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_active(pool: &PgPool, client_id: Uuid, id: Uuid, active: bool) -> AppResult<()> {
    let done = sqlx::query(
        "UPDATE staff SET active = $3, updated_at = now() WHERE client_id = $1 AND id = $2",
    )
    .bind(client_id)
    .bind(id)
    .bind(active)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("staff"));
    }
    Ok(())
}
