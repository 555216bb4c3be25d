//! Request pipeline: access log + metrics, and the authentication hoops. Tenancy starts here: a
//! handler never reads a client id from the request, only from the principal these hoops insert.

use std::net::IpAddr;
use std::time::Instant;

use ipnet::{IpNet, Ipv6Net};
use portal_shared::domain::auth::{Role, TokenType};
use portal_shared::error::AppError;
use portal_shared::pg::api_keys::KeyPrincipal;
use salvo::http::Method;
use salvo::prelude::*;
use salvo::request_id::RequestIdDepotExt;

use crate::error::write_error;
use crate::state::{StaffStatus, State};
use portal_shared::domain::ids::{ApiKeyId, ClientId, MemberId, StaffId};

/// The shared state (injected by `affix_state` on the root router).
pub fn state(depot: &Depot) -> &State {
    depot
        .get_typed::<State>()
        .expect("state is injected on the root router")
}

/// The client's address, resolved once per request by [`client_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientAddr(IpAddr);

/// The caller's address: the TCP peer, or, when the peer is one of `TRUSTED_PROXIES`, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ClientAddr>()
        .map(|c| c.0)
        .or_else(|| req.remote_addr().ip().map(|ip| ip.to_canonical()))
}

/// Who sent a request, given its TCP peer, its `X-Forwarded-For` values (in order) and the
/// trusted proxies. A forwarded address is believed only as far as trusted proxies vouch for it:
/// the list is walked from the right and the first entry not in `trusted` is the client. An entry
/// that is not an address ends the walk at the last trusted hop.
pub fn resolve_client(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for entry in forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rev()
    {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Service hoop: resolves the client's address once (see [`resolve_client`]) for the throttles,
/// the audit log and the access log.
#[handler]
pub async fn client_address(req: &mut Request, depot: &mut Depot) {
    let Some(peer) = req.remote_addr().ip() else {
        return;
    };
    let trusted = &state(depot).config.trusted_proxies;
    let client = if trusted.is_empty() {
        peer.to_canonical()
    } else {
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        resolve_client(peer, &forwarded, trusted)
    };
    req.extensions_mut().insert(ClientAddr(client));
}

/// Every query parameter of this API takes one value: a parameter given twice
/// (`?status=active&status=revoked`) is refused with 400 rather than silently reading one of them.
#[handler]
pub async fn single_query_values(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let repeated = req
        .queries()
        .iter_all()
        .find(|(_, values)| values.len() > 1)
        .map(|(name, _)| name.clone());
    if let Some(name) = repeated {
        deny(
            AppError::validation(&name, "must be given at most once"),
            depot,
            res,
            ctrl,
        );
    }
}

/// Whether the caller reached the service over https: the request's own scheme (a TLS listener,
/// or an absolute `https:` request URI), or `X-Forwarded-Proto: https` (its first value) sent by a
/// peer in `TRUSTED_PROXIES`. From anyone else that header is ignored.
pub fn over_https(req: &Request, depot: &Depot) -> bool {
    if req.scheme() == &salvo::http::uri::Scheme::HTTPS || req.uri().scheme_str() == Some("https") {
        return true;
    }
    let trusted = &state(depot).config.trusted_proxies;
    let peer_trusted = req
        .remote_addr()
        .ip()
        .map(|ip| ip.to_canonical())
        .is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
    peer_trusted
        && req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

pub fn request_id(depot: &Depot) -> Option<String> {
    depot.request_id().map(str::to_owned)
}

/// An authenticated partner staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staff {
    pub staff_id: StaffId,
    pub client_id: ClientId,
    pub role: Role,
}

/// The client an `X-API-Key` belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppClient {
    pub key_id: ApiKeyId,
    pub client_id: ClientId,
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

/// The caller's address as the throttles key it: an IPv4 address, or the /64 of an IPv6 one (a
/// single host is routinely given a whole /64).
pub fn address(req: &Request) -> String {
    client_ip(req)
        .map(throttle_subject)
        .unwrap_or_else(|| "unknown".into())
}

pub fn throttle_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

/// A login attempt, counted against its subject (the email) and its address before the password
/// is checked: of any number of parallel guesses only the limit's worth are evaluated.
pub struct LoginAttempt {
    kind: &'static str,
    subject: String,
    addr: String,
}

impl LoginAttempt {
    /// Counts the attempt (one Redis round trip) and refuses it (429 with `Retry-After`) when its
    /// email or its address is over the limit; sets the rate-limit headers of the email's window.
    /// `kind` labels the metric.
    pub async fn begin(
        st: &crate::state::AppState,
        res: &mut Response,
        kind: &'static str,
        subject: String,
        addr: String,
    ) -> crate::error::ApiResult<Self> {
        use portal_shared::throttle;
        let windows = st
            .throttle
            .hit(&[
                (&throttle::LOGIN_PER_EMAIL, &subject),
                (&throttle::LOGIN_PER_ADDRESS, &addr),
            ])
            .await?;
        rate_headers(res, &windows[0]);
        if let Some(w) = throttle::first_over(&windows) {
            metrics::counter!("portal_logins_total", "kind" => kind, "outcome" => "throttled")
                .increment(1);
            return Err(w
                .into_error("too many failed logins; try again later")
                .into());
        }
        Ok(Self {
            kind,
            subject,
            addr,
        })
    }

    /// The password was right: the email's window starts over and the address gets its attempt back.
    pub async fn succeeded(self, st: &crate::state::AppState) -> crate::error::ApiResult<()> {
        use portal_shared::throttle;
        st.throttle
            .reset(&throttle::LOGIN_PER_EMAIL, &self.subject)
            .await?;
        st.throttle
            .give_back(&[(&throttle::LOGIN_PER_ADDRESS, &self.addr)], 1)
            .await?;
        metrics::counter!("portal_logins_total", "kind" => self.kind, "outcome" => "success")
            .increment(1);
        Ok(())
    }

    /// The email or password was wrong (the attempt stays counted).
    pub fn failed(self) {
        metrics::counter!("portal_logins_total", "kind" => self.kind, "outcome" => "failed")
            .increment(1);
    }
}

/// The answer to a refused refresh token (staff or member). A reused token has revoked its family:
/// that is logged and audited before the 401.
pub async fn refresh_refused(
    st: &crate::state::AppState,
    failure: portal_shared::pg::sessions::RotateFailure,
    req: &Request,
    depot: &Depot,
) -> crate::error::ApiError {
    use portal_shared::pg::{audit, sessions};
    if let sessions::RotateFailure::Reused {
        family_id,
        client_id,
    } = failure
    {
        tracing::warn!(%family_id, "refresh token reuse detected; family revoked");
        let entry = audit::Entry::new(
            client_id,
            audit::Actor::System,
            audit::AuditAction::AuthRefreshReuseDetected,
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

/// Marks a route whose writes change nothing that the cached answers show (dashboard,
/// analytics, funnel, billing, member list), so that [`forget_reads_after_writes`] leaves them alone. Only for
/// frequent app calls whose effect is known: `POST /app/events` (accepted events change nothing
/// until the worker lands them, and the worker announces that), member login, token refresh and
/// the voucher check (sessions and throttle counts, which no cached answer reads).
#[handler]
pub async fn keeps_reads(depot: &mut Depot) {
    depot.insert_typed(KeepsReads);
}

struct KeepsReads;

/// After a successful (2xx) write (any method but GET, HEAD and OPTIONS) of a principal of client
/// X, drops X's cached answers in this instance at once, so its next read sees the write, and
/// announces X to every other instance (in the background: the answer does not wait for Redis).
/// Except on the routes marked [`keeps_reads`]. A write without a principal (a staff login)
/// belongs to no client and changes none of its answers.
#[handler]
pub async fn forget_reads_after_writes(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let read = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    ctrl.call_next(req, depot, res).await;
    if read
        || depot.get_typed::<KeepsReads>().is_ok()
        || !res.status_code.unwrap_or(StatusCode::OK).is_success()
    {
        return;
    }
    let client = depot
        .get_typed::<Staff>()
        .map(|s| s.client_id)
        .or_else(|_| depot.get_typed::<AppClient>().map(|k| k.client_id))
        .or_else(|_| depot.get_typed::<Member>().map(|m| m.client_id));
    if let Ok(client) = client {
        let st = state(depot).clone();
        let changed = portal_shared::announce::ChangedClients::Some(vec![client]);
        st.forget_reads(&changed);
        tokio::spawn(async move {
            let channel =
                portal_shared::announce::clients_changed_channel(&st.config.redis_namespace);
            st.announce(&channel, &changed.payload()).await;
        });
    }
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
    let staff_id = StaffId(claims.sub);
    let status = st
        .staff
        .try_get_with(staff_id, async move {
            let row = portal_shared::pg::unscoped::staff_by_id(&db, staff_id).await?;
            Ok::<_, AppError>(row.map(|s| StaffStatus {
                client_id: s.client_id,
                role: s.role,
                active: s.active,
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
    pub member_id: MemberId,
    pub client_id: ClientId,
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
                member_id: MemberId(c.sub),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &str) -> Vec<IpNet> {
        portal_shared::config::parse_cidrs(list).unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = nets("10.0.0.0/8, 127.0.0.1");
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            resolve_client(ip("203.0.113.9"), &["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        // Right-most untrusted entry; entries left of it are the client's own claims.
        assert_eq!(
            resolve_client(
                ip("127.0.0.1"),
                &["1.1.1.1, 198.51.100.7", "10.0.0.5"],
                &trusted
            ),
            ip("198.51.100.7")
        );
        // Only proxies in the chain: the left-most of them.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), &["10.9.9.9"], &trusted),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), &[], &trusted),
            ip("127.0.0.1")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            resolve_client(ip("127.0.0.1"), &["not-an-ip, 10.0.0.7"], &trusted),
            ip("10.0.0.7")
        );
        // IPv4-mapped IPv6 peers and entries are plain IPv4.
        assert_eq!(
            resolve_client(ip("::ffff:127.0.0.1"), &["::ffff:198.51.100.2"], &trusted),
            ip("198.51.100.2")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            throttle_subject(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            throttle_subject(ip("2001:db8:1:2::1")),
            throttle_subject(ip("2001:db8:1:2:ffff::1"))
        );
        assert_ne!(
            throttle_subject(ip("2001:db8:1:2::1")),
            throttle_subject(ip("2001:db8:1:3::1"))
        );
        assert_eq!(throttle_subject(ip("198.51.100.2")), "198.51.100.2");
    }
}
