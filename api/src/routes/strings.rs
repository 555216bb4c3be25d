//! Content strings: `GET/PUT /partner/strings` and `POST /partner/strings/preview` (partner JWT) and `GET /app/strings` (X-API-Key).

use std::collections::BTreeMap;

use portal_shared::pg::{audit, strings};
use salvo::prelude::*;

use crate::body::Body;
use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{app_client, client_ip, request_id, staff, state};

/// All content strings of the signed-in staff member's client, as one object.
#[endpoint(tags("content"), security(("bearer" = [])), status_codes(200, 401, 503))]
pub async fn get_partner(depot: &mut Depot) -> ApiResult<Json<Envelope<BTreeMap<String, String>>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(strings::get_all(&st.db, s.client_id).await?))
}

/// Merge the given keys into the client's strings; other keys are left as they are.
///
/// Keys match `st_[a-z0-9_]{1,64}`, values are at most 64 KiB, a client has at most 100 keys
/// (more answer 422).
/// Values are HTML and are sanitized: script, style, event-handler attributes and `javascript:`
/// URLs are removed. Returns all strings after the merge.
#[endpoint(
    tags("content"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 403, 413, 422, 503)
)]
pub async fn put_partner(
    body: Body<strings::StringsUpdate>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<BTreeMap<String, String>>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let entries = body.into_inner().0;
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::StringsUpdate,
    )
    .origin(client_ip(req), request_id(depot));
    Ok(ok(strings::merge(
        &st.db,
        s.client_id,
        entry,
        Some(s.staff_id),
        &entries,
    )
    .await?))
}

/// The given keys as the app would show them after saving: the same validation and sanitizing
/// as `PUT /partner/strings`, nothing stored, nothing audited. The portal's content editor uses it
/// for its live preview.
#[endpoint(
    tags("content"),
    security(("bearer" = [])),
    status_codes(200, 400, 401, 403, 413, 422, 503)
)]
pub async fn preview_partner(
    body: Body<strings::StringsUpdate>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<BTreeMap<String, String>>>> {
    staff(depot)?;
    Ok(ok(body.into_inner().0.into_iter().collect()))
}

/// The app's content strings: an array holding one object with every string (as in the seed).
#[endpoint(tags("app"), security(("api_key" = [])), status_codes(200, 401, 503))]
pub async fn get_app(
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<Vec<BTreeMap<String, String>>>>> {
    let st = state(depot).clone();
    let c = app_client(depot)?;
    Ok(ok(vec![strings::get_all(&st.db, c.client_id).await?]))
}
