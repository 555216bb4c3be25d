//! The audit log: who did what, when. Append-only; written in the same transaction as the change
//! where there is one.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{types::Json, PgExecutor, Postgres};
use uuid::Uuid;

use crate::domain::ids::{ClientId, MemberId, StaffId};
use crate::error::AppResult;

/// Declares [`AuditAction`] from `Variant => "dotted.name"` pairs: the names are what the log
/// stores, filters on and returns.
macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Everything the audit log records, a closed set; stored and serialised as its dotted
        /// name ([`AuditAction::as_str`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action, in declaration order.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The dotted name stored in `audit_log.action`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($name => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

audit_actions! {
    ApiKeysCreate => "api_keys.create",
    ApiKeysRevoke => "api_keys.revoke",
    AuthLogin => "auth.login",
    AuthLoginFailed => "auth.login_failed",
    AuthLogout => "auth.logout",
    /// A refresh token was presented twice; its family was revoked.
    AuthRefreshReuseDetected => "auth.refresh_reuse_detected",
    ExportsCreate => "exports.create",
    MemberLogin => "member.login",
    MemberRegister => "member.register",
    ProductsCreate => "products.create",
    ProductsDelete => "products.delete",
    ProductsUpdate => "products.update",
    StaffActivate => "staff.activate",
    StaffCreate => "staff.create",
    StaffDeactivate => "staff.deactivate",
    StaffRename => "staff.rename",
    StaffSetRole => "staff.set_role",
    StringsUpdate => "strings.update",
    VouchersGenerate => "vouchers.generate",
    VouchersRevoke => "vouchers.revoke",
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl sqlx::Type<Postgres> for AuditAction {
    fn type_info() -> PgTypeInfo {
        <str as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl sqlx::Encode<'_, Postgres> for AuditAction {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as sqlx::Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

/// An action as read back from the log. The log is append-only history, so a row this build does
/// not know (written before the set was closed, or by a newer build during a rollout) is kept
/// verbatim and listed, rather than failing the whole page or being rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedAction {
    Known(AuditAction),
    Unrecognised(String),
}

impl LoggedAction {
    pub fn as_str(&self) -> &str {
        match self {
            LoggedAction::Known(a) => a.as_str(),
            LoggedAction::Unrecognised(s) => s,
        }
    }
}

impl From<String> for LoggedAction {
    fn from(s: String) -> Self {
        match AuditAction::parse(&s) {
            Some(a) => LoggedAction::Known(a),
            None => LoggedAction::Unrecognised(s),
        }
    }
}

impl Serialize for LoggedAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl sqlx::Type<Postgres> for LoggedAction {
    fn type_info() -> PgTypeInfo {
        <str as sqlx::Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <str as sqlx::Type<Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for LoggedAction {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(<String as sqlx::Decode<Postgres>>::decode(value)?.into())
    }
}

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
    pub action: AuditAction,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub details: Value,
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl Entry {
    pub fn new(client_id: ClientId, actor: Actor, action: AuditAction) -> Self {
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
    sqlx::query!(
        "INSERT INTO audit_log (client_id, actor_type, actor_id, actor_email, action, target_type, target_id, details, ip, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::inet, $10)",
        e.client_id as ClientId,
        actor_type,
        actor_id,
        e.actor_email.as_deref(),
        e.action as AuditAction,
        e.target_type,
        e.target_id.as_deref(),
        Json(&e.details) as _,
        e.ip.map(|ip| ip.to_string()),
        e.request_id.as_deref(),
    )
    .execute(exec)
    .await?;
    Ok(())
}

/// One audit-log entry, as `GET /partner/audit-log` returns it.
#[derive(Debug, Clone, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "AuditEntry"))]
pub struct AuditRow {
    pub id: i64,
    /// `staff | member | system`.
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub actor_email: Option<String>,
    /// e.g. `auth.login`, `vouchers.generate`, `vouchers.revoke`, `strings.update`, `products.create`.
    #[salvo(schema(value_type = String))]
    pub action: LoggedAction,
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
    // The same filter twice: the count of every match and the page of it.
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM audit_log
           WHERE client_id = $1 AND ($2::text IS NULL OR action = $2)
             AND ($3::timestamptz IS NULL OR created_at >= $3)
             AND ($4::timestamptz IS NULL OR created_at < $4)"#,
        client_id as ClientId,
        action,
        from,
        to,
    )
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query_as!(
        AuditRow,
        r#"SELECT id, actor_type, actor_id, actor_email, action AS "action: LoggedAction",
                  target_type, target_id, details AS "details: Json<Value>",
                  host(ip) AS "ip?", request_id, created_at
           FROM audit_log
           WHERE client_id = $1 AND ($2::text IS NULL OR action = $2)
             AND ($3::timestamptz IS NULL OR created_at >= $3)
             AND ($4::timestamptz IS NULL OR created_at < $4)
           ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"#,
        client_id as ClientId,
        action,
        from,
        to,
        page.limit_i64(),
        page.offset(),
    )
    .fetch_all(pool)
    .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_dotted_names() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json, serde_json::json!(a.as_str()));
        }
        assert_eq!(AuditAction::VouchersGenerate.as_str(), "vouchers.generate");
        assert_eq!(AuditAction::parse("vouchers.explode"), None);
    }

    #[test]
    fn unknown_logged_actions_are_kept_verbatim() {
        let known = LoggedAction::from("auth.login".to_string());
        assert_eq!(known, LoggedAction::Known(AuditAction::AuthLogin));
        let odd = LoggedAction::from("legacy.thing".to_string());
        assert_eq!(odd, LoggedAction::Unrecognised("legacy.thing".into()));
        assert_eq!(
            serde_json::to_value(&odd).unwrap(),
            serde_json::json!("legacy.thing")
        );
    }
}
