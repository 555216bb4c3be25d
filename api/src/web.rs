//! The partner portal (the single-page app built into `WEB_DIR`, `web/dist` by default) at `/`:
//! hashed files under `/assets/` cached for a year, and `index.html` for every client-side path
//! (`/members`, `/vouchers/…`, a reload or a deep link), with a strict Content-Security-Policy.
//! API paths, `/docs` and `/openapi.json` never reach it: their unknown paths stay JSON 404s.

use std::path::Path;

use salvo::prelude::*;
use salvo::serve_static::{StaticDir, StaticFile};

/// Where the app may load from: only this origin, no inline scripts, no framing. Inline `style`
/// attributes are allowed (the chart library positions tooltips with them); style sheets are not.
/// Images may also come from `https:` (product images, content previews).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    style-src-attr 'unsafe-inline'; img-src 'self' data: https:; connect-src 'self'; \
    font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// First path segments that belong to the API (or its documents), never to the portal.
const API_SEGMENTS: &[&str] = &[
    "partner-auth",
    "partner",
    "auth",
    "app",
    "classes",
    "products",
    "health",
    "ready",
    "metrics",
    "docs",
    "openapi.json",
    "assets",
];

fn is_portal_path(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    !API_SEGMENTS.contains(&first)
}

/// The portal's routes, or none when `dir` holds no built app (`scripts/run.sh` builds it).
pub fn router(dir: &Path) -> Option<Router> {
    let index = dir.join("index.html");
    if !index.is_file() {
        tracing::warn!(dir = %dir.display(), "no built portal here (WEB_DIR); / answers 404 until it is built");
        return None;
    }
    Some(
        Router::new()
            .push(
                Router::with_path("assets/{**rest}")
                    .hoop(immutable)
                    .get(StaticDir::new([dir.join("assets")])),
            )
            .push(
                Router::with_path("{**path}")
                    .filter_fn(|req, _| is_portal_path(req.uri().path()))
                    .hoop(page)
                    .get(StaticFile::new(index)),
            ),
    )
}

fn security_headers(res: &mut Response) {
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        res.add_header(name, value, true).ok();
    }
}

/// Hashed assets never change under their name.
#[handler]
async fn immutable(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    ctrl.call_next(req, depot, res).await;
    security_headers(res);
    if res.status_code.is_none_or(|s| s.is_success()) {
        res.add_header("cache-control", "public, max-age=31536000, immutable", true)
            .ok();
    }
}

/// `index.html` is asked for again each time, so a new release is picked up at once.
#[handler]
async fn page(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    ctrl.call_next(req, depot, res).await;
    security_headers(res);
    res.add_header("cache-control", "no-cache", true).ok();
}

#[cfg(test)]
mod tests {
    use super::is_portal_path;

    #[test]
    fn api_paths_never_reach_the_portal() {
        for p in [
            "/",
            "/members",
            "/members/abc",
            "/vouchers",
            "/login",
            "/affiliate",
            "/team",
        ] {
            assert!(is_portal_path(p), "{p}");
        }
        for p in [
            "/partner/members",
            "/partner-auth/me",
            "/auth/login",
            "/products",
            "/classes/x",
            "/docs/",
            "/openapi.json",
            "/assets/x.js",
            "/health",
        ] {
            assert!(!is_portal_path(p), "{p}");
        }
    }
}
