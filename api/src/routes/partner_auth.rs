//! `/partner-auth/*`: staff login, refresh-token rotation, logout, profile.

use portal_shared::domain::auth::TokenType;
use portal_shared::error::AppError;
use portal_shared::pg::{audit, clients, sessions, staff as staff_repo};
use salvo::oapi::extract::JsonBody;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{
    address, client_ip, over_https, refresh_refused, request_id, staff, state, LoginAttempt,
};
use portal_shared::domain::ids::{ClientId, StaffId};

/// The cookie that carries the staff refresh token for the portal (a browser keeps no token where
/// scripts can read it). `HttpOnly`, `SameSite=Strict`, sent back only to `/partner-auth/*`,
/// `Secure` when the request came over https; it lives as long as the token (30 days).
pub const REFRESH_COOKIE: &str = "portal_refresh";
const COOKIE_PATH: &str = "/partner-auth";

fn refresh_cookie(value: String, secure: bool) -> salvo::http::cookie::Cookie<'static> {
    use salvo::http::cookie::{time::Duration, Cookie, SameSite};
    Cookie::build((REFRESH_COOKIE, value))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(Duration::days(
            portal_shared::domain::auth::REFRESH_TOKEN_TTL_DAYS,
        ))
        .build()
}

/// Sets the refresh cookie to `token`.
fn set_refresh_cookie(req: &Request, depot: &Depot, res: &mut Response, token: &str) {
    res.add_cookie(refresh_cookie(token.to_string(), over_https(req, depot)));
}

/// Tells the browser to drop the refresh cookie (same name, path and flags, expired).
fn clear_refresh_cookie(req: &Request, depot: &Depot, res: &mut Response) {
    res.remove_cookie_with(refresh_cookie(String::new(), over_https(req, depot)));
}

/// The refresh token of a refresh or logout: the body's `refreshToken`, else the cookie's.
fn presented_token(body: Option<String>, req: &Request) -> Option<String> {
    body.or_else(|| {
        req.cookie(REFRESH_COOKIE)
            .map(|c| c.value().to_string())
            .filter(|v| !v.is_empty())
    })
}

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
    pub id: ClientId,
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub branding: serde_json::Value,
    pub features: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffMe {
    pub id: StaffId,
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

/// `{}` is enough when the `portal_refresh` cookie carries the token (the portal in a browser).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"refreshToken": "prt_..."})))]
pub struct RefreshRequest {
    /// The refresh token. Optional when the `portal_refresh` cookie carries it; when both are
    /// sent, this one is used.
    pub refresh_token: Option<String>,
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

async fn me(
    st: &crate::state::AppState,
    client_id: ClientId,
    staff_id: StaffId,
) -> ApiResult<StaffMe> {
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
            timezone: c.timezone.name().to_string(),
            branding: c.branding.0,
            features: c.features.0,
        },
    })
}

/// Log in with email and password.
///
/// Answers 401 for a wrong email or password (without saying which) and 429 with `Retry-After`
/// after repeated failures for one email or from one address. Besides the body's tokens, a success
/// sets the refresh token as the cookie `portal_refresh` (`HttpOnly; SameSite=Strict;
/// Path=/partner-auth; Max-Age` 30 days; `Secure` when the request came over https) for browsers,
/// which `/partner-auth/refresh` and `/partner-auth/logout` accept in place of the body field.
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

    let found = portal_shared::pg::unscoped::staff_for_login(&st.db, &email).await?;
    let verified = portal_shared::domain::auth::verify_password(
        body.password,
        found.as_ref().map(|s| s.password_hash.clone()),
    )
    .await?;
    let account = match found {
        Some(s) if verified && s.active => s,
        other => {
            attempt.failed();
            if let Some(s) = other {
                let entry = audit::Entry::new(
                    s.client_id,
                    audit::Actor::Staff(s.id),
                    audit::AuditAction::AuthLoginFailed,
                )
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
        audit::AuditAction::AuthLogin,
    )
    .email(&account.email)
    .origin(ip, request_id(depot));
    audit::record(&st.db, &entry).await?;
    let staff_me = me(&st, account.client_id, account.id).await?;
    set_refresh_cookie(req, depot, res, &refresh_token);
    Ok(ok(LoginData {
        access_token: access,
        refresh_token,
        expires_in: ttl,
        token_type: "Bearer",
        staff: staff_me,
    }))
}

/// Exchange a refresh token for a new pair. Each refresh token works once; presenting a used one
/// again revokes every token of that login. The token is the body's `refreshToken` or, when the
/// body has none, the `portal_refresh` cookie; the new refresh token is in the body and in that
/// cookie (a refused one clears the cookie). 401 when neither carries a token.
#[endpoint(
    tags("partner-auth"),
    security(),
    request_body = RefreshRequest,
    status_codes(200, 400, 401, 413, 503),
    parameters(
        ("portal_refresh" = Option<String>, Cookie, description = "The refresh token, as set by login and refresh (HttpOnly); used when the body has no refreshToken"),
    )
)]
pub async fn refresh(
    body: JsonBody<RefreshRequest>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<TokenPair>>> {
    let st = state(depot).clone();
    let body_token = body.into_inner().refresh_token;
    let from_cookie = body_token.is_none();
    let Some(token) = presented_token(body_token, req) else {
        return Err(AppError::unauthorized(
            "a refresh token is required: refreshToken in the body or the portal_refresh cookie",
        )
        .into());
    };
    let refused = |req: &Request, depot: &Depot, res: &mut Response| {
        if from_cookie {
            clear_refresh_cookie(req, depot, res);
        }
    };
    let rotated = match sessions::rotate(&st.db, &token, true).await? {
        Ok(r) => r,
        Err(failure) => {
            refused(req, depot, res);
            return Err(refresh_refused(&st, failure, req, depot).await);
        }
    };
    let sessions::Subject::Staff(staff_id) = rotated.subject else {
        refused(req, depot, res);
        return Err(AppError::unauthorized("refresh token is invalid").into());
    };
    let s = staff_repo::get(&st.db, rotated.client_id, staff_id).await?;
    if !s.active {
        sessions::revoke_family(&st.db, &rotated.refresh_token).await?;
        refused(req, depot, res);
        return Err(AppError::unauthorized("this staff account is not active").into());
    }
    let (access, ttl) = st
        .jwt
        .issue(TokenType::Partner, s.id, s.client_id, Some(s.role()))?;
    set_refresh_cookie(req, depot, res, &rotated.refresh_token);
    Ok(ok(TokenPair {
        access_token: access,
        refresh_token: rotated.refresh_token,
        expires_in: ttl,
        token_type: "Bearer",
    }))
}

/// End the session of a refresh token (all tokens of that login stop working). The token is the
/// body's `refreshToken` or, when the body has none, the `portal_refresh` cookie; the answer always
/// clears that cookie. Without any token (or with an unknown one) there is nothing to end, and the
/// answer is the same.
#[endpoint(
    tags("partner-auth"),
    security(),
    request_body = RefreshRequest,
    status_codes(200, 400, 413, 503),
    parameters(
        ("portal_refresh" = Option<String>, Cookie, description = "The refresh token, as set by login and refresh (HttpOnly); used when the body has no refreshToken"),
    )
)]
pub async fn logout(
    body: JsonBody<RefreshRequest>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<LoggedOut>>> {
    let st = state(depot).clone();
    if let Some(token) = presented_token(body.into_inner().refresh_token, req) {
        if let Some((client_id, sessions::Subject::Staff(staff_id))) =
            sessions::revoke_family(&st.db, &token).await?
        {
            let entry = audit::Entry::new(
                client_id,
                audit::Actor::Staff(staff_id),
                audit::AuditAction::AuthLogout,
            )
            .origin(client_ip(req), request_id(depot));
            audit::record(&st.db, &entry).await?;
        }
    }
    clear_refresh_cookie(req, depot, res);
    Ok(ok(LoggedOut { logged_out: true }))
}

/// The signed-in staff member and their client (name, branding, timezone).
#[endpoint(tags("partner-auth"), security(("bearer" = [])), status_codes(200, 401, 503))]
pub async fn profile(depot: &mut Depot) -> ApiResult<Json<Envelope<StaffMe>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(me(&st, s.client_id, s.staff_id).await?))
}
