//! Partner self-service: the team (`/partner/staff`) and the app's API keys (`/partner/api-keys`).
//! Admins only, reads included (staff emails and key names are the partner's internal business);
//! every write is audited with the acting staff member as actor, in the write's transaction.
//! Changes that affect running API instances are announced on Redis (`AppState::announce_*`), the
//! same channels `portal-admin` uses.

use chrono::{DateTime, Utc};
use portal_shared::domain::auth::{validate_password_strength, Role};
use portal_shared::domain::ids::{ApiKeyId, StaffId};
use portal_shared::error::AppError;
use portal_shared::pg::{api_keys, audit, staff as staff_repo};
use salvo::oapi::extract::{JsonBody, PathParam};

use crate::body::Body;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{client_ip, request_id, staff, state, Staff};
use crate::params;

/// Longest password accepted here, in characters (so the 1024-byte limit of the hash input holds
/// for any characters, and the document can state the bound).
const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"id": "01a212bf-0aca-743e-b263-3e36ed0b7418", "email": "coach@studio-north.example", "name": "Coach", "role": "viewer", "active": true, "createdAt": "2026-11-01T09:00:00Z", "lastLoginAt": null})))]
pub struct StaffDto {
    pub id: StaffId,
    pub email: String,
    pub name: String,
    #[salvo(schema(value_type = portal_shared::domain::auth::Role))]
    pub role: String,
    /// `false` once deactivated: no login, no refresh, live tokens refused.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<&staff_repo::StaffRow> for StaffDto {
    fn from(s: &staff_repo::StaffRow) -> Self {
        Self {
            id: s.id,
            email: s.email.clone(),
            name: s.name.clone(),
            role: s.role().as_str().to_string(),
            active: s.active,
            created_at: s.created_at,
            last_login_at: s.last_login_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StaffList {
    /// Oldest first.
    pub staff: Vec<StaffDto>,
}

/// Request body of `POST /partner/staff`. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[salvo(schema(example = json!({"email": "coach@studio-north.example", "password": "correct horse battery", "name": "Coach", "role": "viewer"})))]
pub struct StaffCreate {
    /// The login; case-insensitive, unique across all partners.
    #[salvo(schema(format = Email, max_length = 254))]
    pub email: String,
    /// 8 to 256 characters.
    #[salvo(schema(min_length = 8, max_length = 256))]
    pub password: String,
    /// 1 to 200 characters, not blank.
    #[salvo(schema(
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: String,
    #[salvo(schema(value_type = portal_shared::domain::auth::Role))]
    pub role: String,
}

fn parse_role(raw: &str) -> Result<Role, AppError> {
    Role::parse(raw).ok_or_else(|| AppError::validation("role", "must be admin or viewer"))
}

fn actor(s: &Staff, req: &Request, depot: &Depot) -> (audit::Entry, staff_repo::Origin) {
    let origin = (client_ip(req), request_id(depot));
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::StaffCreate,
    )
    .origin(origin.0, origin.1.clone());
    (entry, origin)
}

/// The partner's staff accounts. Admins only.
#[endpoint(tags("team"), security(("bearer" = [])), status_codes(200, 401, 403, 503))]
pub async fn list_staff(depot: &mut Depot) -> ApiResult<Json<Envelope<StaffList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let rows = staff_repo::list(&st.db, s.client_id).await?;
    Ok(ok(StaffList {
        staff: rows.iter().map(StaffDto::from).collect(),
    }))
}

/// Add a staff account to the partner (admins only). 409 `EMAIL_TAKEN` when any partner already
/// has an account with this email (logins are by email alone). Audited as `staff.create`.
#[endpoint(
    tags("team"),
    security(("bearer" = [])),
    request_body = StaffCreate,
    status_codes(201, 400, 401, 403, 409, 413, 503),
    responses((status_code = 201, description = "Created", body = Envelope<StaffDto>))
)]
pub async fn create_staff(
    body: JsonBody<StaffCreate>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<StaffDto>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let body = body.into_inner();
    let role = parse_role(&body.role)?;
    let name =
        staff_repo::parse_name(&body.name).map_err(|e| AppError::validation_many(vec![e]))?;
    staff_repo::normalize_email(&body.email)?;
    validate_password_strength(&body.password)?;
    if body.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(AppError::validation(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        )
        .into());
    }
    let (entry, _) = actor(&s, req, depot);
    let id = staff_repo::create_audited(
        &st.db,
        staff_repo::NewStaff {
            client_id: s.client_id,
            email: &body.email,
            name: &name,
            password: &body.password,
            role,
        },
        Some(entry),
    )
    .await?;
    let row = staff_repo::get(&st.db, s.client_id, id).await?;
    res.status_code(StatusCode::CREATED);
    Ok(ok(StaffDto::from(&row)))
}

/// Change a staff member's role, active flag or name (admins only); send only what changes.
/// Deactivation ends every session of the member and refuses their access tokens at once on every
/// API instance; a demotion to viewer refuses their writes at once. 409 `LAST_ADMIN` when the
/// change would leave the partner without an active admin. Audited per changed field
/// (`staff.set_role`, `staff.deactivate`, `staff.activate`, `staff.rename`).
#[endpoint(
    tags("team"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 403, 404, 409, 413, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn update_staff(
    id: PathParam<String>,
    patch: Body<staff_repo::Patch>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<StaffDto>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = params::path_id(&id, "staff")?;
    let patch = patch.into_inner();
    let (_, origin) = actor(&s, req, depot);
    let updated = staff_repo::update(
        &st.db,
        s.client_id,
        id,
        &patch,
        audit::Actor::Staff(s.staff_id),
        origin,
    )
    .await?;
    if updated.access_changed {
        st.announce_staff_change(id).await;
    }
    Ok(ok(StaffDto::from(&updated.row)))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"id": "01a212bf-0aca-743e-b263-3e36ed0b7418", "name": "iOS app", "prefix": "ppk_3f9a1c2b", "createdAt": "2026-11-01T09:00:00Z", "lastUsedAt": "2026-11-30T18:12:00Z", "revoked": false, "revokedAt": null})))]
pub struct ApiKeyDto {
    pub id: ApiKeyId,
    pub name: String,
    /// The key's first characters, to tell keys apart; the key itself is shown once, on creation.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// Last accepted use, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<api_keys::ApiKey> for ApiKeyDto {
    fn from(k: api_keys::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked: k.revoked_at.is_some(),
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyList {
    /// Newest first, revoked keys included.
    pub api_keys: Vec<ApiKeyDto>,
}

/// Request body of `POST /partner/api-keys`. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[salvo(schema(example = json!({"name": "iOS app"})))]
pub struct ApiKeyCreate {
    /// 1 to 100 characters, not blank.
    #[salvo(schema(
        max_length = 100,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"id": "01a212bf-0aca-743e-b263-3e36ed0b7418", "name": "iOS app", "prefix": "ppk_3f9a1c2b", "createdAt": "2026-11-30T18:12:00Z", "key": "ppk_3f9a1c2b…"})))]
pub struct CreatedApiKey {
    pub id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// The key, for the app's `X-API-Key`: shown this once, never stored (only its SHA-256).
    pub key: String,
}

/// The partner's API keys, revoked ones included (never the keys themselves). Admins only.
#[endpoint(tags("team"), security(("bearer" = [])), status_codes(200, 401, 403, 503))]
pub async fn list_keys(depot: &mut Depot) -> ApiResult<Json<Envelope<ApiKeyList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let keys = api_keys::list(&st.db, s.client_id).await?;
    Ok(ok(ApiKeyList {
        api_keys: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Create an API key for the partner's app (admins only). The answer carries the key once; only
/// its SHA-256 is kept. Audited as `api_keys.create`.
#[endpoint(
    tags("team"),
    security(("bearer" = [])),
    request_body = ApiKeyCreate,
    status_codes(201, 400, 401, 403, 413, 503),
    responses((status_code = 201, description = "Created", body = Envelope<CreatedApiKey>))
)]
pub async fn create_key(
    body: JsonBody<ApiKeyCreate>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<CreatedApiKey>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let raw = body.into_inner().name;
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::validation("name", "must not be blank").into());
    }
    if raw.chars().count() > 100 {
        return Err(AppError::validation("name", "must be at most 100 characters").into());
    }
    if raw.contains('\0') {
        return Err(AppError::validation("name", "must not contain NUL characters").into());
    }
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ApiKeysCreate,
    )
    .origin(client_ip(req), request_id(depot));
    let created = api_keys::create_audited(&st.db, s.client_id, name, Some(entry)).await?;
    let row = api_keys::get(&st.db, s.client_id, created.id).await?;
    res.status_code(StatusCode::CREATED);
    Ok(ok(CreatedApiKey {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        created_at: row.created_at,
        key: created.key,
    }))
}

/// Revoke an API key (admins only): refused at once by every API instance. Revoking a revoked key
/// changes nothing and answers the same. Audited as `api_keys.revoke`.
#[endpoint(
    tags("team"),
    security(("bearer" = [])),
    status_codes(200, 401, 403, 404, 503),
    parameters(("id" = Uuid, Path))
)]
pub async fn revoke_key(
    id: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<ApiKeyDto>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = params::path_id(&id, "api key")?;
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::ApiKeysRevoke,
    )
    .origin(client_ip(req), request_id(depot));
    let (key, hash) = api_keys::revoke_for(&st.db, s.client_id, id, Some(entry)).await?;
    st.announce_key_revoked(&hash).await;
    Ok(ok(key.into()))
}
