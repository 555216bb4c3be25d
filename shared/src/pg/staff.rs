//! Partner staff accounts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::domain::auth::{hash_password, validate_password_strength, Role};
use crate::domain::ids::{ClientId, StaffId};
use crate::domain::json::FromJson;
use crate::error::{AppError, AppResult, FieldError};
use crate::pg::audit;

/// A staff row. `Debug` leaves the password hash out.
#[derive(Clone)]
pub struct StaffRow {
    pub id: StaffId,
    pub client_id: ClientId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    /// Decoded when the row is read: a value outside the set is an error, never a silent viewer.
    pub role: Role,
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
        self.role
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaffProfile {
    pub id: StaffId,
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
    pub client_id: ClientId,
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
}

pub async fn create(pool: &PgPool, new: NewStaff<'_>) -> AppResult<StaffId> {
    create_audited(pool, new, None).await
}

/// [`create`], recording `audit` (its target set to the new member) in the same transaction.
pub async fn create_audited(
    pool: &PgPool,
    new: NewStaff<'_>,
    audit: Option<audit::Entry>,
) -> AppResult<StaffId> {
    let email = normalize_email(new.email)?;
    validate_password_strength(new.password)?;
    if new.name.chars().count() > 200 {
        return Err(AppError::validation_many(vec![FieldError::new(
            "name",
            "must be at most 200 characters",
        )]));
    }
    let hash = hash_password(new.password.to_string()).await?;
    let id = StaffId::new_v7();
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO staff (id, client_id, email, name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)",
        id as StaffId,
        new.client_id as ClientId,
        &email,
        new.name.trim(),
        hash,
        new.role as Role,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict { .. } => {
            AppError::conflict("EMAIL_TAKEN", "a staff account with this email already exists")
        }
        AppError::Unprocessable { .. } => AppError::not_found("client"),
        other => other,
    })?;
    if let Some(entry) = audit {
        let entry = entry.target("staff", id).details(serde_json::json!({
            "email": email,
            "name": new.name.trim(),
            "role": new.role.as_str(),
        }));
        audit::record(&mut *tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Every staff member of a client, oldest first.
pub async fn list(pool: &PgPool, client_id: ClientId) -> AppResult<Vec<StaffRow>> {
    Ok(sqlx::query_as!(
        StaffRow,
        r#"SELECT id AS "id: StaffId", client_id AS "client_id: ClientId", email, name,
                  password_hash, role AS "role: Role", active, created_at, last_login_at
           FROM staff WHERE client_id = $1 ORDER BY created_at, id"#,
        client_id as ClientId,
    )
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, client_id: ClientId, id: StaffId) -> AppResult<StaffRow> {
    sqlx::query_as!(
        StaffRow,
        r#"SELECT id AS "id: StaffId", client_id AS "client_id: ClientId", email, name,
                  password_hash, role AS "role: Role", active, created_at, last_login_at
           FROM staff WHERE client_id = $1 AND id = $2"#,
        client_id as ClientId,
        id as StaffId,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("staff"))
}

pub async fn touch_login(pool: &PgPool, client_id: ClientId, id: StaffId) -> AppResult<()> {
    sqlx::query!(
        "UPDATE staff SET last_login_at = now() WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as StaffId,
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn set_active(
    pool: &PgPool,
    client_id: ClientId,
    id: StaffId,
    active: bool,
) -> AppResult<()> {
    let done = sqlx::query!(
        "UPDATE staff SET active = $3, updated_at = now() WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as StaffId,
        active,
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::not_found("staff"));
    }
    Ok(())
}

/// Redis channel on which staff deactivations and role changes are announced (payload: the staff
/// id), so every API instance drops the member from its staff cache at once.
pub fn change_channel(namespace: &str) -> String {
    format!("{namespace}:staff:changed")
}

/// What a deactivation or role change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffChange {
    pub id: StaffId,
    pub client_id: ClientId,
    pub email: String,
    pub role_before: Role,
    pub role: Role,
    pub was_active: bool,
    pub active: bool,
    /// Refresh tokens revoked by this change (deactivation ends every session).
    pub sessions_revoked: u64,
    /// Active admins the client has left.
    pub active_admins: i64,
}

/// Where a change came from, for its audit entry: the caller's address and request id (none for
/// the CLI).
pub type Origin = (Option<std::net::IpAddr>, Option<String>);

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Deactivates a staff member: no login, no refresh, and (once API instances hear of it) no
/// request with an access token already issued. Revokes every refresh token of theirs and audits
/// `staff.deactivate`, all in one transaction. Deactivating an inactive member is harmless.
pub async fn deactivate(
    pool: &PgPool,
    client_id: ClientId,
    id: StaffId,
    actor: audit::Actor,
) -> AppResult<StaffChange> {
    let mut tx = pool.begin().await?;
    let before = lock(&mut tx, client_id, id).await?;
    let revoked = apply_deactivate(&mut tx, &before, actor, &(None, None)).await?;
    let change = StaffChange {
        id,
        client_id,
        email: before.email.clone(),
        role_before: before.role(),
        role: before.role(),
        was_active: before.active,
        active: false,
        sessions_revoked: revoked,
        active_admins: active_admins(&mut tx, client_id).await?,
    };
    tx.commit().await?;
    Ok(change)
}

/// Marks `before` inactive, revokes its refresh tokens and audits `staff.deactivate`; returns how
/// many tokens were revoked.
async fn apply_deactivate(
    tx: &mut Tx,
    before: &StaffRow,
    actor: audit::Actor,
    origin: &Origin,
) -> AppResult<u64> {
    sqlx::query!(
        "UPDATE staff SET active = false, updated_at = now() WHERE client_id = $1 AND id = $2",
        before.client_id as ClientId,
        before.id as StaffId,
    )
    .execute(&mut **tx)
    .await?;
    let revoked = sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE client_id = $1 AND staff_id = $2 AND revoked_at IS NULL",
        before.client_id as ClientId,
        before.id as StaffId,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let entry = audit::Entry::new(before.client_id, actor, audit::AuditAction::StaffDeactivate)
        .target("staff", before.id)
        .details(serde_json::json!({
            "email": before.email,
            "wasActive": before.active,
            "sessionsRevoked": revoked,
        }))
        .origin(origin.0, origin.1.clone());
    audit::record(&mut **tx, &entry).await?;
    Ok(revoked)
}

/// Gives a staff member another role (a demotion to `viewer` forbids writes at once on every API
/// instance that hears of it). Audited as `staff.set_role`; setting the current role is harmless.
pub async fn set_role(
    pool: &PgPool,
    client_id: ClientId,
    id: StaffId,
    role: Role,
    actor: audit::Actor,
) -> AppResult<StaffChange> {
    let mut tx = pool.begin().await?;
    let before = lock(&mut tx, client_id, id).await?;
    apply_set_role(&mut tx, &before, role, actor, &(None, None)).await?;
    let change = StaffChange {
        id,
        client_id,
        email: before.email.clone(),
        role_before: before.role(),
        role,
        was_active: before.active,
        active: before.active,
        sessions_revoked: 0,
        active_admins: active_admins(&mut tx, client_id).await?,
    };
    tx.commit().await?;
    Ok(change)
}

async fn apply_set_role(
    tx: &mut Tx,
    before: &StaffRow,
    role: Role,
    actor: audit::Actor,
    origin: &Origin,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE staff SET role = $3, updated_at = now() WHERE client_id = $1 AND id = $2",
        before.client_id as ClientId,
        before.id as StaffId,
        role as Role,
    )
    .execute(&mut **tx)
    .await?;
    let entry = audit::Entry::new(before.client_id, actor, audit::AuditAction::StaffSetRole)
        .target("staff", before.id)
        .details(serde_json::json!({
            "email": before.email,
            "from": before.role().as_str(),
            "to": role.as_str(),
        }))
        .origin(origin.0, origin.1.clone());
    audit::record(&mut **tx, &entry).await?;
    Ok(())
}

/// A change of a staff member asked for by a partner admin (the body of
/// `PATCH /partner/staff/{id}`): any non-empty subset of role, active, name. Unknown fields are
/// refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, salvo_oapi::ToSchema)]
#[serde(deny_unknown_fields)]
#[salvo(schema(name = "StaffUpdate", min_properties = 1, example = json!({"role": "viewer", "active": false})))]
pub struct Patch {
    #[salvo(schema(required = false, value_type = Role))]
    pub role: Option<Role>,
    /// `false` deactivates (and ends every session of) the member; `true` lets them log in again.
    #[salvo(schema(required = false, value_type = bool))]
    pub active: Option<bool>,
    /// 1 to 200 characters, not blank.
    #[salvo(schema(
        required = false,
        value_type = String,
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: Option<String>,
}

/// The fields of a `PATCH` body, each checked (all problems at once); unknown fields and `{}` are
/// refused.
impl FromJson for Patch {
    fn from_json(body: &serde_json::Value) -> AppResult<Self> {
        let Some(fields) = body.as_object() else {
            return Err(AppError::validation("body", "must be a JSON object"));
        };
        if fields.is_empty() {
            return Err(AppError::validation(
                "body",
                "send at least one of role, active, name",
            ));
        }
        let mut patch = Patch::default();
        let mut errors = Vec::new();
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("role", serde_json::Value::String(r)) => match Role::parse(r) {
                    Some(role) => patch.role = Some(role),
                    None => errors.push(FieldError::new("role", "must be admin or viewer")),
                },
                ("active", serde_json::Value::Bool(a)) => patch.active = Some(*a),
                ("name", serde_json::Value::String(n)) => match parse_name(n) {
                    Ok(name) => patch.name = Some(name),
                    Err(e) => errors.push(e),
                },
                ("role", _) => errors.push(FieldError::new("role", "must be admin or viewer")),
                ("active", _) => errors.push(FieldError::new("active", "must be true or false")),
                ("name", _) => errors.push(FieldError::new("name", "must be a string")),
                (other, _) => {
                    errors.push(FieldError::new(other, "is not a field of a staff member"))
                }
            }
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(AppError::validation_many(errors))
        }
    }
}

/// A staff member's display name: 1 to 200 characters once trimmed, no U+0000.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        Err(FieldError::new("name", "must not be blank"))
    } else if raw.chars().count() > 200 {
        Err(FieldError::new("name", "must be at most 200 characters"))
    } else if raw.contains('\0') {
        Err(FieldError::new("name", "must not contain NUL characters"))
    } else {
        Ok(name.to_string())
    }
}

/// What [`update`] did.
#[derive(Debug, Clone)]
pub struct Updated {
    pub row: StaffRow,
    /// The role or the active flag changed: every API instance must forget the member's cached
    /// status (announce on [`change_channel`]).
    pub access_changed: bool,
}

/// Applies `patch` to a staff member of the client, in one transaction that writes one audit entry
/// per field that actually changes (`staff.rename`, `staff.set_role`, `staff.deactivate` — which
/// also revokes every refresh token —, `staff.activate`); values equal to the current ones change
/// nothing. Refused with 409 `LAST_ADMIN` when it would leave the client without an active admin.
/// The client's active admins are locked first (in id order), so two admins demoting or
/// deactivating each other at the same moment take turns and the second is refused.
pub async fn update(
    pool: &PgPool,
    client_id: ClientId,
    id: StaffId,
    patch: &Patch,
    actor: audit::Actor,
    origin: Origin,
) -> AppResult<Updated> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "SELECT id FROM staff WHERE client_id = $1 AND active AND role = 'admin'
         ORDER BY id FOR UPDATE",
        client_id as ClientId,
    )
    .fetch_all(&mut *tx)
    .await?;
    let before = lock(&mut tx, client_id, id).await?;
    if let Some(name) = patch.name.as_deref().map(str::trim) {
        if name != before.name {
            sqlx::query!(
                "UPDATE staff SET name = $3, updated_at = now() WHERE client_id = $1 AND id = $2",
                client_id as ClientId,
                id as StaffId,
                name,
            )
            .execute(&mut *tx)
            .await?;
            let entry = audit::Entry::new(client_id, actor, audit::AuditAction::StaffRename)
                .target("staff", id)
                .details(serde_json::json!({
                    "email": before.email, "from": before.name, "to": name,
                }))
                .origin(origin.0, origin.1.clone());
            audit::record(&mut *tx, &entry).await?;
        }
    }
    let mut access_changed = false;
    if let Some(role) = patch.role.filter(|r| *r != before.role()) {
        apply_set_role(&mut tx, &before, role, actor, &origin).await?;
        access_changed = true;
    }
    match patch.active {
        Some(false) if before.active => {
            apply_deactivate(&mut tx, &before, actor, &origin).await?;
            access_changed = true;
        }
        Some(true) if !before.active => {
            sqlx::query!(
                "UPDATE staff SET active = true, updated_at = now() WHERE client_id = $1 AND id = $2",
                client_id as ClientId,
                id as StaffId,
            )
            .execute(&mut *tx)
            .await?;
            let entry = audit::Entry::new(client_id, actor, audit::AuditAction::StaffActivate)
                .target("staff", id)
                .details(serde_json::json!({ "email": before.email }))
                .origin(origin.0, origin.1.clone());
            audit::record(&mut *tx, &entry).await?;
            access_changed = true;
        }
        _ => {}
    }
    if access_changed && active_admins(&mut tx, client_id).await? == 0 {
        return Err(AppError::conflict(
            "LAST_ADMIN",
            "this would leave the partner without an active admin; make another member admin first",
        ));
    }
    let row = lock(&mut tx, client_id, id).await?;
    tx.commit().await?;
    Ok(Updated {
        row,
        access_changed,
    })
}

/// The staff row, locked for the rest of the transaction (so concurrent changes take turns).
async fn lock(tx: &mut Tx, client_id: ClientId, id: StaffId) -> AppResult<StaffRow> {
    sqlx::query_as!(
        StaffRow,
        r#"SELECT id AS "id: StaffId", client_id AS "client_id: ClientId", email, name,
                  password_hash, role AS "role: Role", active, created_at, last_login_at
           FROM staff WHERE client_id = $1 AND id = $2 FOR UPDATE"#,
        client_id as ClientId,
        id as StaffId,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| AppError::not_found("staff"))
}

async fn active_admins(tx: &mut Tx, client_id: ClientId) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM staff WHERE client_id = $1 AND active AND role = 'admin'"#,
        client_id as ClientId,
    )
    .fetch_one(&mut **tx)
    .await?)
}
