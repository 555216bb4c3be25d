//! The audit log: who did what, when. Append-only; written in the same transaction as the change
//! where there is one.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{types::Json, FromRow, PgExecutor};
use uuid::Uuid;

use crate::domain::ids::{ClientId, MemberId, StaffId};
use crate::error::AppResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Staff(StaffId),
    Member(MemberId),
    System,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub client_id: ClientId,
    pub actor: Actor,
    pub actor_email: Option<String>,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl Entry {
    pub fn new(client_id: ClientId, actor: Actor, action: &'static str) -> Self {
        Self {
            client_id,
            actor,
            actor_email: None,
            action,
            target_type: None,
            target_id: None,
            details: Value::Object(Default::default()),
            ip: None,
            request_id: None,
        }
    }

    pub fn target(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.actor_email = Some(email.into());
        self
    }

    pub fn origin(mut self, ip: Option<IpAddr>, request_id: Option<String>) -> Self {
        self.ip = ip;
        self.request_id = request_id;
        self
    }
}

pub async fn record<'e>(exec: impl PgExecutor<'e>, e: &Entry) -> AppResult<()> {
    let (actor_type, actor_id) = match e.actor {
        Actor::Staff(id) => ("staff", Some(id.0)),
        Actor::Member(id) => ("member", Some(id.0)),
        Actor::System => ("system", None),
    };
    sqlx::query(
        "INSERT INTO audit_log (client_id, actor_type, actor_id, actor_email, action, target_type, target_id, details, ip, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10)",
    )
    .bind(e.client_id)
    .bind(actor_type)
    .bind(actor_id)
    .bind(&e.actor_email)
    .bind(e.action)
    .bind(e.target_type)
    .bind(&e.target_id)
    .bind(Json(&e.details))
    .bind(e.ip.map(|ip| ip.to_string()))
    .bind(&e.request_id)
    .execute(exec)
    .await?;
    Ok(())
}

/// One audit-log entry, as `GET /partner/audit-log` returns it.
#[derive(Debug, Clone, FromRow, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "AuditEntry"))]
pub struct AuditRow {
    pub id: i64,
    /// `staff | member | system`.
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    /// e.g. `auth.login`, `vouchers.generate`, `vouchers.revoke`, `strings.update`, `products.create`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    #[salvo(schema(value_type = Value))]
    pub details: Json<Value>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Newest first, for one client, optionally by action and time range (`to` exclusive).
pub async fn list(
    pool: &sqlx::PgPool,
    client_id: ClientId,
    action: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    page: crate::domain::pagination::Page,
) -> AppResult<(Vec<AuditRow>, i64)> {
    let filter = "WHERE client_id = $1 AND ($2::text IS NULL OR action = $2)
        AND ($3::timestamptz IS NULL OR created_at >= $3)
        AND ($4::timestamptz IS NULL OR created_at < $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM audit_log {filter}"
    )))
    .bind(client_id)
    .bind(action)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
        "SELECT id, actor_type, actor_id, actor_email, action, target_type, target_id, details,
                host(ip) AS ip, request_id, created_at
         FROM audit_log {filter}
         ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    )))
    .bind(client_id)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(page.limit_i64())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}
