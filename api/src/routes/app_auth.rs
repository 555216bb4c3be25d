//! App onboarding (X-API-Key): voucher validation, member registration, login, refresh.

use chrono::{DateTime, Utc};
use portal_shared::domain::auth::{verify_password, TokenType};
use portal_shared::error::AppError;
use portal_shared::pg::{audit, members, sessions, staff::normalize_email, vouchers};
use portal_shared::throttle;
use salvo::oapi::extract::JsonBody;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{
    address, app_client, client_ip, rate_headers, refresh_refused, request_id, state, AppClient,
    LoginAttempt,
};
use crate::routes::partner_auth::TokenPair;
use portal_shared::domain::ids::{ClientId, MemberId};

#[derive(Deserialize, ToSchema)]
#[salvo(schema(example = json!({"code": "STUDIO-7K3M9Q2X"})))]
pub struct ValidateRequest {
    /// 1 to 40 printable ASCII characters, not only spaces; case-insensitive.
    #[salvo(schema(max_length = 40, pattern = "^[ -~]*[!-~][ -~]*$"))]
    pub code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResult {
    /// `true` when the code can be used to register now.
    pub valid: bool,
    /// `active | redeemed | expired | revoked | not_found`.
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One voucher guess of this caller, counted before the code is looked up against the budget it
/// shares with registrations: per client address, and per API key and address (the key ships
/// inside the app, so it alone identifies no one). Over either: 429 with `Retry-After`.
async fn spend_guess(
    st: &crate::state::AppState,
    c: &AppClient,
    req: &Request,
    res: &mut Response,
) -> ApiResult<()> {
    let addr = address(req);
    let by_key = format!("{}:{addr}", c.key_id);
    let windows = st
        .throttle
        .hit(&[
            (&throttle::VOUCHER_GUESS_PER_KEY_ADDRESS, &by_key),
            (&throttle::VOUCHER_GUESS_PER_ADDRESS, &addr),
        ])
        .await?;
    rate_headers(res, &windows[0]);
    match throttle::first_over(&windows) {
        Some(w) => Err(w
            .into_error("too many voucher codes tried; try again later")
            .into()),
        None => Ok(()),
    }
}

/// Gives a guess back: the code was usable, so the attempt was no guess.
async fn refund_guess(st: &crate::state::AppState, c: &AppClient, req: &Request) -> ApiResult<()> {
    let addr = address(req);
    let by_key = format!("{}:{addr}", c.key_id);
    st.throttle
        .give_back(
            &[
                (&throttle::VOUCHER_GUESS_PER_KEY_ADDRESS, &by_key),
                (&throttle::VOUCHER_GUESS_PER_ADDRESS, &addr),
            ],
            1,
        )
        .await?;
    Ok(())
}

/// Check a voucher code before registering (case-insensitive). Codes of other partners look
/// exactly like codes that do not exist. Every check spends the caller's voucher-guessing budget,
/// which registrations with unusable codes share.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    request_body = ValidateRequest,
    status_codes(200, 400, 401, 413, 429, 503)
)]
pub async fn validate(
    body: JsonBody<ValidateRequest>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<ValidateResult>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    let code = body.into_inner().code;
    if !vouchers::code_shape_ok(&code) {
        return Err(
            AppError::validation("code", "must be 1 to 40 printable ASCII characters").into(),
        );
    }
    spend_guess(&st, &c, req, res).await?;
    let v = vouchers::validate_code(&st.db, c.client_id, &code).await?;
    Ok(ok(ValidateResult {
        valid: v.valid,
        status: v.status_word().to_string(),
        expires_at: v.expires_at,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"voucherCode": "STUDIO-7K3M9Q2X", "email": "sam@example.com", "password": "a long password", "name": "Sam Lee"})))]
pub struct RegisterRequest {
    /// 1 to 40 printable ASCII characters, not only spaces; case-insensitive.
    #[salvo(schema(max_length = 40, pattern = "^[ -~]*[!-~][ -~]*$"))]
    pub voucher_code: String,
    /// Case-insensitive; surrounding whitespace is ignored.
    #[salvo(schema(format = Email, max_length = 254))]
    pub email: String,
    /// At least 8 characters, at most 1024 bytes (UTF-8).
    #[salvo(schema(min_length = 8, max_length = 1024))]
    pub password: String,
    /// At most 200 characters, not blank.
    #[salvo(schema(
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    ))]
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberProfile {
    pub id: MemberId,
    pub email: String,
    pub name: String,
    pub registered_at: DateTime<Utc>,
    pub voucher_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberSession {
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub member: MemberProfile,
}

/// A member's new access token beside its refresh token.
fn member_tokens(
    st: &crate::state::AppState,
    member_id: MemberId,
    client_id: ClientId,
    refresh_token: String,
) -> ApiResult<TokenPair> {
    let (access_token, expires_in) = st
        .jwt
        .issue(TokenType::Member, member_id, client_id, None)?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        expires_in,
        token_type: "Bearer",
    })
}

fn profile(m: &members::MemberRow) -> MemberProfile {
    MemberProfile {
        id: m.id,
        email: m.email.clone(),
        name: m.name.clone(),
        registered_at: m.registered_at,
        voucher_code: m.voucher_code.clone(),
    }
}

/// Register a member with a voucher code. The member and the redemption are one transaction: of
/// concurrent registrations with one code exactly one succeeds, the rest get 409. A code that is
/// unknown, used, expired or revoked spends the caller's voucher-guessing budget (shared with
/// `/auth/voucher/validate`); over it: 429. The code is looked up before the password is hashed.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    request_body = RegisterRequest,
    status_codes(201, 400, 401, 404, 409, 413, 422, 429, 503),
    responses((status_code = 201, description = "Registered", body = Envelope<MemberSession>))
)]
pub async fn register(
    body: JsonBody<RegisterRequest>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<MemberSession>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    let b = body.into_inner();
    let registration = members::Registration {
        client_id: c.client_id,
        voucher_code: &b.voucher_code,
        email: &b.email,
        password: &b.password,
        name: &b.name,
    };
    members::validate_registration(&registration)?;
    spend_guess(&st, &c, req, res).await?;
    let v = vouchers::validate_code(&st.db, c.client_id, &b.voucher_code).await?;
    if !v.valid {
        return Err(members::voucher_refusal(v.status).into());
    }
    refund_guess(&st, &c, req).await?;
    let (member, refresh_token) =
        members::register(&st.db, registration, (client_ip(req), request_id(depot))).await?;
    let tokens = member_tokens(&st, member.id, c.client_id, refresh_token)?;
    res.status_code(StatusCode::CREATED);
    Ok(ok(MemberSession {
        tokens,
        member: profile(&member),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct MemberLogin {
    /// Case-insensitive; surrounding whitespace is ignored.
    #[salvo(schema(format = Email, max_length = 254))]
    pub email: String,
    /// 1 to 1024 bytes (UTF-8).
    #[salvo(schema(min_length = 1, max_length = 1024))]
    pub password: String,
}

/// Member login (within the API key's client). Throttled like staff logins.
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    request_body = MemberLogin,
    status_codes(200, 400, 401, 413, 429, 503)
)]
pub async fn login(
    body: JsonBody<MemberLogin>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<Envelope<MemberSession>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    let b = body.into_inner();
    let email = normalize_email(&b.email)?;
    if b.password.is_empty() || b.password.len() > 1024 {
        return Err(AppError::validation("password", "must be 1 to 1024 bytes").into());
    }
    let subject = format!("{}:{email}", c.client_id);
    let attempt = LoginAttempt::begin(&st, res, "member", subject, address(req)).await?;
    let found = members::find_for_login(&st.db, c.client_id, &email).await?;
    let ok_pw =
        verify_password(b.password, found.as_ref().map(|l| l.password_hash.clone())).await?;
    let Some(m) = found.filter(|_| ok_pw).map(|l| l.member) else {
        attempt.failed();
        return Err(AppError::unauthorized("email or password is incorrect").into());
    };
    attempt.succeeded(&st).await?;
    let member_id = m.id;
    let refresh_token =
        sessions::issue_new(&st.db, c.client_id, sessions::Subject::Member(member_id)).await?;
    let tokens = member_tokens(&st, member_id, c.client_id, refresh_token)?;
    let entry = audit::Entry::new(
        c.client_id,
        audit::Actor::Member(member_id),
        audit::AuditAction::MemberLogin,
    )
    .email(&m.email)
    .origin(client_ip(req), request_id(depot));
    audit::record(&st.db, &entry).await?;
    Ok(ok(MemberSession {
        tokens,
        member: profile(&m),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRefresh {
    pub refresh_token: String,
}

/// Exchange a member refresh token for a new pair (rotation; reuse revokes the family).
#[endpoint(
    tags("app"),
    security(("api_key" = [])),
    request_body = MemberRefresh,
    status_codes(200, 400, 401, 413, 503)
)]
pub async fn refresh(
    body: JsonBody<MemberRefresh>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<TokenPair>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    let token = body.into_inner().refresh_token;
    let rotated = match sessions::rotate(&st.db, &token, false).await? {
        Ok(r) if r.client_id == c.client_id => r,
        Ok(r) => {
            // A token of another client: end that session rather than hand out a new one.
            sessions::revoke_family(&st.db, &r.refresh_token).await?;
            return Err(AppError::unauthorized("refresh token is invalid").into());
        }
        Err(f) => return Err(refresh_refused(&st, f, req, depot).await),
    };
    let sessions::Subject::Member(member_id) = rotated.subject else {
        return Err(AppError::unauthorized("refresh token is invalid").into());
    };
    Ok(ok(member_tokens(
        &st,
        member_id,
        c.client_id,
        rotated.refresh_token,
    )?))
}
