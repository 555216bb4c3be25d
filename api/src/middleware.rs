//! Request pipeline: access log + metrics, and the authentication hoops. Tenancy starts here: a
//! handler never reads a client id from the request, only from the principal these hoops insert.

use std::net::IpAddr;
use std::time::Instant;

use portal_shared::auth::{Role, TokenType};
use portal_shared::error::AppError;
use portal_shared::repo::api_keys::KeyPrincipal;
use salvo::http::Method;
use salvo::prelude::*;
use salvo::request_id::RequestIdDepotExt;
use uuid::Uuid;

use crate::error::write_error;
use crate::state::{StaffStatus, State};

/// The shared state (injected by `affix_state` on the root router).
pub fn state(depot: &Depot) -> &State {
    depot
        .get_typed::<State>()
        .expect("state is injected on the root router")
}

/// The caller's address (the direct peer; the API is meant to run behind nothing or a trusted
/// proxy that terminates on the same host).
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.remote_addr().ip()
}

pub fn request_id(depot: &Depot) -> Option<String> {
    depot.request_id().map(str::to_owned)
}

/// An authenticated partner staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staff {
    pub staff_id: Uuid,
    pub client_id: Uuid,
    pub role: Role,
}

/// The client an `X-API-Key` belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppClient {
    pub key_id: Uuid,
    pub client_id: Uuid,
}

pub fn staff(depot: &Depot) -> Result<Staff, crate::error::ApiError> {
    depot
        .get_typed::<Staff>()
        .copied()
        .map_err(|_| AppError::unauthorized("authentication required").into())
}

pub fn app_client(depot: &Depot) -> Result<AppClient, crate::error::ApiError> {
    depot
        .get_typed::<AppClient>()
        .copied()
        .map_err(|_| AppError::unauthorized("X-API-Key is required").into())
}

/// `X-RateLimit-Limit` / `X-RateLimit-Remaining` of a throttle window.
pub fn rate_headers(res: &mut Response, w: &portal_shared::throttle::Window) {
    res.add_header("x-ratelimit-limit", w.limit.to_string(), true)
        .ok();
    res.add_header("x-ratelimit-remaining", w.remaining.to_string(), true)
        .ok();
}

/// The caller's address as the login throttles key it.
pub fn address(req: &Request) -> String {
    client_ip(req)
        .map(|i| i.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Refuses a login (429 with `Retry-After`) while its subject (the email) or its address has failed
/// too often; sets the rate-limit headers of the subject's window. `kind` labels the metric.
pub async fn login_allowed(
    st: &crate::state::AppState,
    res: &mut Response,
    kind: &'static str,
    subject: &str,
    addr: &str,
) -> crate::error::ApiResult<()> {
    use portal_shared::throttle;
    let by_subject = st
        .throttle
        .peek(&throttle::LOGIN_PER_EMAIL, subject)
        .await?;
    let by_addr = st.throttle.peek(&throttle::LOGIN_PER_ADDRESS, addr).await?;
    rate_headers(res, &by_subject);
    for w in [by_subject, by_addr] {
        if w.exceeded() {
            metrics::counter!("portal_logins_total", "kind" => kind, "outcome" => "throttled")
                .increment(1);
            return Err(w
                .into_error("too many failed logins; try again later")
                .into());
        }
    }
    Ok(())
}

/// Counts a failed login against its subject and its address, with the rate-limit headers.
pub async fn login_failed(
    st: &crate::state::AppState,
    res: &mut Response,
    kind: &'static str,
    subject: &str,
    addr: &str,
) -> crate::error::ApiResult<()> {
    use portal_shared::throttle;
    let w = st.throttle.hit(&throttle::LOGIN_PER_EMAIL, subject).await?;
    st.throttle.hit(&throttle::LOGIN_PER_ADDRESS, addr).await?;
    rate_headers(res, &w);
    metrics::counter!("portal_logins_total", "kind" => kind, "outcome" => "failed").increment(1);
    Ok(())
}

/// The answer to a refused refresh token (staff or member). A reused token has revoked its family:
/// that is logged and audited before the 401.
pub async fn refresh_refused(
    st: &crate::state::AppState,
    failure: portal_shared::repo::sessions::RotateFailure,
    req: &Request,
    depot: &Depot,
) -> crate::error::ApiError {
    use portal_shared::repo::{audit, sessions};
    if let sessions::RotateFailure::Reused {
        family_id,
        client_id,
    } = failure
    {
        tracing::warn!(%family_id, "refresh token reuse detected; family revoked");
        let entry = audit::Entry::new(
            client_id,
            audit::Actor::System,
            "auth.refresh_reuse_detected",
        )
        .target("session", family_id)
        .origin(client_ip(req), request_id(depot));
        if let Err(e) = audit::record(&st.db, &entry).await {
            return e.into();
        }
    }
    sessions::failure_error(failure).into()
}

fn deny(err: AppError, depot: &Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    write_error(&err, depot, res);
    ctrl.skip_rest();
}

/// Access log line and Prometheus metrics for every request (route label = the matched pattern,
/// so ids do not explode the label set).
#[handler]
pub async fn observe(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let start = Instant::now();
    ctrl.call_next(req, depot, res).await;
    let elapsed = start.elapsed();
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let route = match req.matched_path() {
        "" if status == 404 => "<unmatched>".to_string(),
        p => format!("/{p}"),
    };
    let method = req.method().as_str().to_string();
    metrics::counter!("portal_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("portal_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(
        request_id = depot.request_id().unwrap_or("-"),
        %method,
        path = req.uri().path(),
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Partner JWT: signature, `exp`, `typ=partner`, and the staff member still active in that client.
#[handler]
pub async fn require_staff(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let st = state(depot).clone();
    let Some(token) = bearer(req) else {
        return deny(
            AppError::unauthorized("Authorization: Bearer <access token> is required"),
            depot,
            res,
            ctrl,
        );
    };
    let claims = match st.jwt.verify(token, TokenType::Partner) {
        Ok(c) => c,
        Err(e) => return deny(e, depot, res, ctrl),
    };
    let db = st.db.clone();
    let staff_id = claims.sub;
    let status = st
        .staff
        .try_get_with(staff_id, async move {
            let row: Option<(Uuid, String, bool)> =
                sqlx::query_as("SELECT client_id, role, active FROM staff WHERE id = $1")
                    .bind(staff_id)
                    .fetch_optional(&db)
                    .await?;
            Ok::<_, AppError>(row.map(|(client_id, role, active)| StaffStatus {
                client_id,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                active,
            }))
        })
        .await;
    let status = match status {
        Ok(s) => s,
        Err(e) => return deny(AppError::from(e), depot, res, ctrl),
    };
    match status {
        Some(s) if s.active && s.client_id == claims.client => {
            depot.insert_typed(Staff {
                staff_id,
                client_id: s.client_id,
                // The current role wins over the one in the token: a demotion applies at once.
                role: s.role,
            });
        }
        _ => deny(
            AppError::unauthorized("this staff account is not active"),
            depot,
            res,
            ctrl,
        ),
    }
}

/// The single place where the `viewer` role is enforced: every non-read method under the partner
/// routes answers 403 for viewers.
#[handler]
pub async fn deny_viewer_writes(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if read {
        return;
    }
    match depot.get_typed::<Staff>() {
        Ok(s) if s.role == Role::Admin => {}
        Ok(_) => deny(
            AppError::forbidden("the viewer role can only read"),
            depot,
            res,
            ctrl,
        ),
        Err(_) => deny(
            AppError::unauthorized("authentication required"),
            depot,
            res,
            ctrl,
        ),
    }
}

/// Admin-only routes (audit log).
#[handler]
pub async fn require_admin(depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    match depot.get_typed::<Staff>() {
        Ok(s) if s.role == Role::Admin => {}
        _ => deny(
            AppError::forbidden("this needs the admin role"),
            depot,
            res,
            ctrl,
        ),
    }
}

/// `X-API-Key`: hashed and resolved through the moka cache.
#[handler]
pub async fn require_api_key(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let st = state(depot).clone();
    let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) else {
        return deny(
            AppError::unauthorized("X-API-Key header is required"),
            depot,
            res,
            ctrl,
        );
    };
    match st.api_keys.authenticate(&st.db, key.trim()).await {
        Ok(KeyPrincipal { key_id, client_id }) => {
            depot.insert_typed(AppClient { key_id, client_id });
        }
        Err(e) => deny(e, depot, res, ctrl),
    }
}

/// An app member (member JWT whose client is the API key's client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub member_id: Uuid,
    pub client_id: Uuid,
}

pub fn member(depot: &Depot) -> Result<Member, crate::error::ApiError> {
    depot
        .get_typed::<Member>()
        .copied()
        .map_err(|_| AppError::unauthorized("a member token is required").into())
}

/// Member routes: `Authorization: Bearer <member JWT>` of the API key's client.
#[handler]
pub async fn require_member(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let st = state(depot).clone();
    let Ok(key) = depot.get_typed::<AppClient>().copied() else {
        return deny(
            AppError::unauthorized("X-API-Key header is required"),
            depot,
            res,
            ctrl,
        );
    };
    let Some(token) = bearer(req) else {
        return deny(
            AppError::unauthorized("Authorization: Bearer <member token> is required"),
            depot,
            res,
            ctrl,
        );
    };
    match st.jwt.verify(token, TokenType::Member) {
        Ok(c) if c.client == key.client_id => {
            depot.insert_typed(Member {
                member_id: c.sub,
                client_id: c.client,
            });
        }
        Ok(_) => deny(
            AppError::unauthorized("the member token belongs to another client"),
            depot,
            res,
            ctrl,
        ),
        Err(e) => deny(e, depot, res, ctrl),
    }
}

/// Voucher routes: the partner JWT and the API key must belong to the same client, because the key
/// ships inside the app and must never be enough on its own.
#[handler]
pub async fn require_key_of_staff_client(
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let (Ok(s), Ok(k)) = (depot.get_typed::<Staff>(), depot.get_typed::<AppClient>()) else {
        return deny(
            AppError::unauthorized("a partner token and X-API-Key are required"),
            depot,
            res,
            ctrl,
        );
    };
    if s.client_id != k.client_id {
        deny(
            AppError::forbidden("X-API-Key belongs to a different client than the signed-in staff"),
            depot,
            res,
            ctrl,
        );
    }
}
