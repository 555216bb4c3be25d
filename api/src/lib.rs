//! Partner Portal HTTP API. `service(state)` builds the whole salvo service (used by the binary
//! and, in-process, by the tests); `run` is the binary's body.

pub mod body;
pub mod doc;
pub mod envelope;
pub mod error;
pub mod middleware;
pub mod params;
pub mod reads;
pub mod routes;
pub mod state;
pub mod web;

use std::time::Duration;

use futures::StreamExt;
use portal_shared::announce::{self, ChangedClients};
use portal_shared::config::Config;
use portal_shared::pg::api_keys::revocation_channel;
use salvo::catcher::Catcher;
use salvo::oapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme};
use salvo::oapi::{Info, SecurityScheme};
use salvo::prelude::*;

pub use state::{AppState, State};

/// Largest request body accepted (content strings are the largest legitimate bodies).
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// The API routes (without docs), as a router tree.
pub fn api_router() -> Router {
    use middleware::*;
    use routes::*;

    let partner_auth = Router::with_path("partner-auth")
        .push(Router::with_path("login").post(partner_auth::login))
        .push(Router::with_path("refresh").post(partner_auth::refresh))
        .push(Router::with_path("logout").post(partner_auth::logout))
        .push(
            Router::with_path("me")
                .hoop(require_staff)
                .get(partner_auth::profile),
        );

    let partner = Router::with_path("partner")
        .hoop(require_staff)
        .hoop(deny_viewer_writes)
        .push(
            Router::with_path("vouchers")
                .hoop(require_api_key)
                .hoop(require_key_of_staff_client)
                .get(vouchers::list)
                .post(vouchers::generate)
                .push(Router::with_path("stats").get(vouchers::stats))
                .push(Router::with_path("export").get(exports::vouchers_export))
                .push(Router::with_path("{id:num}").delete(vouchers::revoke)),
        )
        .push(
            Router::with_path("strings")
                .get(strings::get_partner)
                .put(strings::put_partner)
                .push(Router::with_path("preview").post(strings::preview_partner)),
        )
        .push(
            Router::with_path("members")
                .get(members::list)
                .push(Router::with_path("export").get(exports::members_export))
                .push(Router::with_path("{id}").get(members::detail)),
        )
        .push(
            Router::with_path("products")
                .get(products::list)
                .post(products::create)
                .push(
                    Router::with_path("{id}")
                        .get(products::get)
                        .put(products::update)
                        .delete(products::delete),
                ),
        )
        .push(Router::with_path("dashboard").get(insights::dashboard))
        .push(
            Router::with_path("billing")
                .get(billing::report)
                .push(Router::with_path("export").get(exports::billing_export)),
        )
        .push(
            Router::with_path("exports").get(exports::list).push(
                Router::with_path("{jobId}")
                    .get(exports::job_status)
                    .push(Router::with_path("download").get(exports::download)),
            ),
        )
        .push(Router::with_path("analytics").get(insights::analytics))
        .push(Router::with_path("funnel").get(insights::funnel))
        .push(
            Router::with_path("staff")
                .hoop(require_admin)
                .get(team::list_staff)
                .post(team::create_staff)
                .push(Router::with_path("{id}").patch(team::update_staff)),
        )
        .push(
            Router::with_path("api-keys")
                .hoop(require_admin)
                .get(team::list_keys)
                .post(team::create_key)
                .push(Router::with_path("{id}").delete(team::revoke_key)),
        )
        .push(
            Router::with_path("audit-log")
                .hoop(require_admin)
                .get(audit_log::list),
        );

    let app = Router::new()
        .hoop(require_api_key)
        .push(Router::with_path("app/strings").get(strings::get_app))
        .push(
            Router::with_path("app/events")
                .hoop(keeps_reads)
                .hoop(require_member)
                .post(events::ingest),
        )
        .push(
            Router::with_path("auth")
                .push(
                    Router::with_path("voucher/validate")
                        .hoop(keeps_reads)
                        .post(app_auth::validate),
                )
                .push(Router::with_path("register").post(app_auth::register))
                .push(
                    Router::with_path("login")
                        .hoop(keeps_reads)
                        .post(app_auth::login),
                )
                .push(
                    Router::with_path("refresh")
                        .hoop(keeps_reads)
                        .post(app_auth::refresh),
                ),
        )
        .push(
            Router::with_path("products")
                .get(products::app_list)
                .push(Router::with_path("types").get(products::app_types))
                .push(Router::with_path("{id}").get(products::app_get)),
        )
        .push(
            Router::with_path("classes")
                .get(classes::list)
                .push(Router::with_path("{id}").get(classes::get)),
        );

    Router::new()
        .hoop(middleware::single_query_values)
        .hoop(middleware::forget_reads_after_writes)
        .push(Router::with_path("health").get(health::health))
        .push(Router::with_path("ready").get(health::ready))
        .push(Router::with_path("metrics").get(health::prometheus))
        .push(partner_auth)
        .push(partner)
        .push(app)
}

/// The OpenAPI document of `router`: what the `#[endpoint]` attributes state, finished by
/// [`doc::finish`].
pub fn openapi(router: &Router) -> OpenApi {
    let doc = OpenApi::with_info(
        Info::new("Partner Portal API", env!("CARGO_PKG_VERSION")).description(
            "Vouchers, members, analytics, billing, content and products for partners of the \
             white-label fitness app. Every answer uses the envelope {success, data} or \
             {success:false, error:{code, message, details}}; 429 and 503 carry Retry-After. \
             Query values: surrounding whitespace is ignored, and an empty value means the \
             parameter is not given (except page and limit, which must be whole numbers); a \
             parameter given more than once is refused with 400.",
        ),
    )
    .add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::new(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description("A partner staff access token (from /partner-auth/login)"),
        ),
    )
    .add_security_scheme(
        "member_bearer",
        SecurityScheme::Http(
            Http::new(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description("A member's access token (from /auth/register or /auth/login)"),
        ),
    )
    .add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
    )
    .merge_router(router);
    doc::finish(doc)
}

/// The complete service: API routes, OpenAPI document, docs UI, error catcher and the
/// request-id / panic / size / timeout / metrics layers.
pub fn service(state: State) -> Service {
    portal_shared::telemetry::metrics_handle();
    salvo::http::request::set_global_secure_max_size(MAX_BODY_BYTES as usize);
    let api = api_router();
    let doc = openapi(&api);
    let state_web_dir = state.config.web_dir.clone();
    let root = Router::new()
        .hoop(salvo::affix_state::inject(state))
        .hoop(middleware::client_address)
        .push(api)
        .push(doc.into_router("/openapi.json"))
        .push(SwaggerUi::new("/openapi.json").into_router("/docs"));
    let root = match web::router(&state_web_dir) {
        Some(portal) => root.push(portal),
        None => root,
    };
    Service::new(root)
        .hoop(RequestId::new())
        .hoop(CatchPanic::new())
        .hoop(middleware::observe)
        .hoop(max_size(MAX_BODY_BYTES))
        .hoop(Timeout::new(Duration::from_secs(30)))
        .catcher(Catcher::default().hoop(error::catcher))
}

/// Listens for the announcements on Redis and applies them to this instance's caches at once:
/// - `{ns}:api-keys:revoked` (payload: SHA-256 of the key, hex): the key leaves the key cache;
/// - `{ns}:staff:changed` (payload: staff id): the member leaves the staff cache;
/// - `{ns}:clients:changed` (payload: client ids, or `*` for all): their cached dashboard,
///   analytics, funnel, billing and member-list answers are dropped (`*` also reloads the
///   catalogue).
///
/// `portal-admin`, the worker and other API instances announce. The caches' lifetimes are the
/// fallback when an announcement is missed; after a (re)subscription every cache starts empty,
/// since announcements made meanwhile are lost.
pub async fn watch_announcements(state: State) {
    let keys = revocation_channel(&state.config.redis_namespace);
    let staff = portal_shared::pg::staff::change_channel(&state.config.redis_namespace);
    let clients = announce::clients_changed_channel(&state.config.redis_namespace);
    loop {
        let result: redis::RedisResult<()> = async {
            let client = redis::Client::open(state.config.redis_url.expose())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&[&keys, &staff, &clients]).await?;
            state.api_keys.invalidate_all();
            state.staff.invalidate_all();
            state.forget_reads(&ChangedClients::All);
            let mut stream = pubsub.on_message();
            while let Some(msg) = stream.next().await {
                let payload: &[u8] = msg.get_payload_bytes();
                let channel = msg.get_channel_name();
                if channel == clients {
                    match std::str::from_utf8(payload)
                        .ok()
                        .and_then(ChangedClients::parse)
                    {
                        Some(changed) => state.forget_reads(&changed),
                        None => tracing::warn!("unreadable clients-changed announcement ignored"),
                    }
                } else if channel == staff {
                    match std::str::from_utf8(payload)
                        .ok()
                        .and_then(|s| s.parse::<portal_shared::domain::ids::StaffId>().ok())
                    {
                        Some(id) => state.staff.invalidate(&id).await,
                        None => tracing::warn!("unreadable staff change announcement ignored"),
                    }
                } else if let Ok(hash) = <[u8; 32]>::try_from(hex_decode(payload).as_slice()) {
                    state.api_keys.invalidate(&hash).await;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "announcement listener disconnected; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn hex_decode(s: &[u8]) -> Vec<u8> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| {
            (0..s.len())
                .step_by(2)
                .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the API until SIGTERM/Ctrl-C, then finishes requests in flight (up to the shutdown timeout).
pub async fn run(config: Config) -> anyhow::Result<()> {
    portal_shared::telemetry::metrics_handle();
    let state = AppState::new(config).await?;
    if state.config.migrate_on_start {
        // Migrations may run (or wait for another process's lock) longer than the API's query
        // time limits allow, so they get their own connections without those limits.
        let pg = portal_shared::pg::pool(&state.config)?;
        portal_shared::pg::migrate_with_retry(&pg, Duration::from_secs(60)).await?;
        let ch = portal_shared::ch::ClickHouse::from_config(&state.config);
        tokio::spawn(async move {
            migrate_clickhouse_until_done(&ch, &pg).await;
            pg.close().await;
        });
    }
    tokio::spawn(watch_announcements(state.clone()));
    let acceptor = TcpListener::new(state.config.bind).try_bind().await?;
    tracing::info!(bind = %state.config.bind, "portal-api listening");
    let server = Server::new(acceptor);
    let handle = server.handle();
    let grace = state.config.shutdown_timeout;
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(grace_secs = grace.as_secs(), "finishing requests in flight");
        handle.stop_graceful(grace);
    });
    server.serve(service(state)).await;
    tracing::info!("portal-api stopped");
    Ok(())
}

/// ClickHouse may come up after the API: keep trying in the background.
pub async fn migrate_clickhouse_until_done(ch: &portal_shared::ch::ClickHouse, pg: &sqlx::PgPool) {
    loop {
        let result = async {
            let migrations = portal_shared::ch::embedded()?;
            portal_shared::ch::migrate(ch, pg, &migrations).await
        }
        .await;
        match result {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "clickhouse migrations not applied yet; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

pub use portal_shared::telemetry::shutdown_signal;
