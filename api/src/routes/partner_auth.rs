//! `/partner-auth/*`: staff login, refresh-token rotation, logout, profile.

use portal_shared::auth::TokenType;
use portal_shared::error::AppError;
use portal_shared::repo::{audit, clients, sessions, staff as staff_repo};
use salvo::oapi::extract::JsonBody;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{
    address, client_ip, refresh_refused, request_id, staff, state, LoginAttempt,
};

#[derive(Deserialize, ToSchema)]
#[salvo(schema(example = json!({"email": "admin@studio-north.example", "password": "correct horse battery"})))]
pub struct LoginRequest {
    /// Case-insensitive; surrounding whitespace is ignored.
    #[salvo(schema(format = Email, max_length = 254))]
    pub email: String,
    /// 1 to 1024 bytes (UTF-8).
    #[salvo(schema(min_length = 1, max_length = 1024))]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub branding: serde_json::Value,
    pub features: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffMe {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
    pub last_login_at: Option<chrono::DateTime<chrono::Utc>>,
    pub client: ClientInfo,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginData {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires (900).
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub staff: StaffMe,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: i64,
    pub token_type: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOut {
    pub logged_out: bool,
}

async fn me(st: &crate::state::AppState, client_id: Uuid, staff_id: Uuid) -> ApiResult<StaffMe> {
    let s = staff_repo::get(&st.db, client_id, staff_id).await?;
    let c = clients::get(&st.db, client_id).await?;
    Ok(StaffMe {
        id: s.id,
        email: s.email.clone(),
        name: s.name.clone(),
        role: s.role().as_str().to_string(),
        last_login_at: s.last_login_at,
        client: ClientInfo {
            id: c.id,
            name: c.name,
            slug: c.slug,
            timezone: c.timezone,
            branding: c.branding.0,
            features: c.features.0,
        },
    })
}

/// Log in with email and password.
///
/// Answers 401 for a wrong email or password (without saying which) and 429 with `Retry-After`
/// after repeated failures for one email or from one address.
#[endpoint(
    tags("partner-auth"),
    security(),
    request_body = LoginRequest,
    status_codes(200, 400, 401, 413, 429, 503)
)]
pub async fn login(
    body: JsonBody<LoginRequest>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<LoginData>>> {
    let st = state(depot).clone();
    let body = body.into_inner();
    let email = staff_repo::normalize_email(&body.email)?;
    if body.password.is_empty() || body.password.len() > 1024 {
        return Err(AppError::validation("password", "must be 1 to 1024 bytes").into());
    }
    let ip = client_ip(req);
    let attempt = LoginAttempt::begin(&st, res, "staff", email.clone(), address(req)).await?;

    let found = staff_repo::find_for_login(&st.db, &email).await?;
    let verified = portal_shared::auth::verify_password(
        body.password,
        found.as_ref().map(|s| s.password_hash.clone()),
    )
    .await?;
    let account = match found {
        Some(s) if verified && s.active => s,
        other => {
            attempt.failed();
            if let Some(s) = other {
                let entry =
                    audit::Entry::new(s.client_id, audit::Actor::Staff(s.id), "auth.login_failed")
                        .email(&s.email)
                        .origin(ip, request_id(depot));
                audit::record(&st.db, &entry).await?;
            }
            return Err(AppError::unauthorized("email or password is incorrect").into());
        }
    };

    attempt.succeeded(&st).await?;
    let (access, ttl) = st.jwt.issue(
        TokenType::Partner,
        account.id,
        account.client_id,
        Some(account.role()),
    )?;
    let refresh_token = sessions::issue_new(
        &st.db,
        account.client_id,
        sessions::Subject::Staff(account.id),
    )
    .await?;
    staff_repo::touch_login(&st.db, account.client_id, account.id).await?;
    let entry = audit::Entry::new(
        account.client_id,
        audit::Actor::Staff(account.id),
        "auth.login",
    )
    .email(&account.email)
    .origin(ip, request_id(depot));
    audit::record(&st.db, &entry).await?;
    let staff_me = me(&st, account.client_id, account.id).await?;
    Ok(ok(LoginData {
        access_token: access,
        refresh_token,
        expires_in: ttl,
        token_type: "Bearer",
        staff: staff_me,
    }))
}

/// Exchange a refresh token for a new pair. Each refresh token works once; presenting a used one
/// again revokes every token of that login.
#[endpoint(
    tags("partner-auth"),
    security(),
    request_body = RefreshRequest,
    status_codes(200, 400, 401, 413, 503)
)]
pub async fn refresh(
    body: JsonBody<RefreshRequest>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<TokenPair>>> {
    let st = state(depot).clone();
    let token = body.into_inner().refresh_token;
    let rotated = match sessions::rotate(&st.db, &token, true).await? {
        Ok(r) => r,
        Err(failure) => return Err(refresh_refused(&st, failure, req, depot).await),
    };
    let sessions::Subject::Staff(staff_id) = rotated.subject else {
        return Err(AppError::unauthorized("refresh token is invalid").into());
    };
    let s = staff_repo::get(&st.db, rotated.client_id, staff_id).await?;
    if !s.active {
        sessions::revoke_family(&st.db, &rotated.refresh_token).await?;
        return Err(AppError::unauthorized("this staff account is not active").into());
    }
    let (access, ttl) = st
        .jwt
        .issue(TokenType::Partner, s.id, s.client_id, Some(s.role()))?;
    Ok(ok(TokenPair {
        access_token: access,
        refresh_token: rotated.refresh_token,
        expires_in: ttl,
        token_type: "Bearer",
    }))
}

/// End the session of a refresh token (all tokens of that login stop working).
#[endpoint(
    tags("partner-auth"),
    security(),
    request_body = RefreshRequest,
    status_codes(200, 400, 413, 503)
)]
pub async fn logout(
    body: JsonBody<RefreshRequest>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<LoggedOut>>> {
    let st = state(depot).clone();
    let token = body.into_inner().refresh_token;
    if let Some((client_id, sessions::Subject::Staff(staff_id))) =
        sessions::revoke_family(&st.db, &token).await?
    {
        let entry = audit::Entry::new(client_id, audit::Actor::Staff(staff_id), "auth.logout")
            .origin(client_ip(req), request_id(depot));
        audit::record(&st.db, &entry).await?;
    }
    Ok(ok(LoggedOut { logged_out: true }))
}

/// The signed-in staff member and their client (name, branding, timezone).
#[endpoint(tags("partner-auth"), security(("bearer" = [])), status_codes(200, 401, 503))]
pub async fn profile(depot: &mut Depot) -> ApiResult<Json<Envelope<StaffMe>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(me(&st, s.client_id, s.staff_id).await?))
}
