//! `/partner/vouchers/*` (partner JWT + X-API-Key of the same client).

use portal_shared::error::AppError;
use portal_shared::pg::{audit, idempotency, vouchers};
use salvo::oapi::extract::PathParam;
use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::body::Body;
use crate::envelope::{ok, Envelope, PaginationDoc};
use crate::error::ApiResult;
use crate::middleware::{client_ip, request_id, staff, state};
use crate::params::{FromQuery, Paging, Query, QueryReader, Reported};
use portal_shared::domain::ids::{VoucherBatchId, VoucherId};
use portal_shared::domain::pagination::{Page, Sort};
use portal_shared::pg::vouchers::Voucher;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Generated {
    pub batch_id: VoucherBatchId,
    pub quantity: i64,
    pub vouchers: Vec<Voucher>,
}

/// Generate 1–500 voucher codes as one batch.
///
/// Send an `Idempotency-Key` header to make retries safe: a retried request with the same key and
/// body returns the first answer and creates nothing new (header `Idempotent-Replayed: true`).
#[endpoint(
    tags("vouchers"),
    security(("bearer" = [], "api_key" = [])),
    status_codes(201, 400, 401, 403, 413, 422, 503),
    responses((status_code = 201, description = "Vouchers created", body = Envelope<Generated>)),
    parameters((
        "Idempotency-Key" = Option<String>,
        Header,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$",
        description = "Makes retries safe: 1 to 255 visible ASCII characters. The same key with \
                       another body answers 422."
    ))
)]
pub async fn generate(
    body: Body<vouchers::Generate>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<serde_json::Value>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let g = &*body;
    let idem_key = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| AppError::validation("Idempotency-Key", "must be visible ASCII"))?;
    let hash = idempotency::request_hash(body.raw());
    let mut tx = st.db.begin().await?;
    if let Some(k) = &idem_key {
        idempotency::validate_key(k)?;
        if let Some((status, stored)) =
            idempotency::lookup(&mut tx, s.client_id, "vouchers.generate", k, &hash).await?
        {
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED));
            res.add_header("idempotent-replayed", "true", true).ok();
            return Ok(Json(stored));
        }
    }
    let (batch_id, created) = vouchers::generate(&mut tx, s.client_id, Some(s.staff_id), g).await?;
    let entry = audit::Entry::new(
        s.client_id,
        audit::Actor::Staff(s.staff_id),
        audit::AuditAction::VouchersGenerate,
    )
    .target("voucher_batch", batch_id)
    .details(serde_json::json!({
        "quantity": g.quantity, "prefix": g.prefix, "expiresAt": g.expires_at,
    }))
    .origin(client_ip(req), request_id(depot));
    audit::record(&mut *tx, &entry).await?;
    let data = Generated {
        batch_id,
        quantity: g.quantity,
        vouchers: created,
    };
    let response = serde_json::json!({ "success": true, "data": data });
    if let Some(k) = &idem_key {
        idempotency::store(
            &mut tx,
            s.client_id,
            "vouchers.generate",
            k,
            &hash,
            201,
            &response,
        )
        .await?;
    }
    tx.commit().await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(response))
}

#[derive(Serialize, ToSchema)]
pub struct VoucherList {
    pub vouchers: Vec<Voucher>,
    pub pagination: PaginationDoc,
}

/// The query of `GET /partner/vouchers`.
pub struct VoucherQuery {
    filter: vouchers::ListFilter,
    sort: Sort,
    page: Page,
}

impl FromQuery for VoucherQuery {
    fn from_query(q: &QueryReader<'_>) -> Result<Self, Reported> {
        let status = q.parse("status", vouchers::parse_status);
        let search = q.parse("search", |v| crate::params::text(v, "search", Some(64)));
        let batch_id = q.parse("batchId", |v| {
            match v.map(str::trim).filter(|b| !b.is_empty()) {
                None => Ok(None),
                Some(b) => Uuid::parse_str(b)
                    .map(|id| Some(VoucherBatchId(id)))
                    .map_err(|_| AppError::validation("batchId", "must be a UUID")),
            }
        });
        let sort = q.parse("sort", vouchers::parse_sort);
        let page = q.page(100);
        Ok(Self {
            filter: vouchers::ListFilter {
                status: status?,
                search: search?,
                batch_id: batch_id?,
            },
            sort: sort?,
            page: page?,
        })
    }

    fn document(c: &mut salvo::oapi::Components, op: &mut salvo::oapi::Operation) {
        <Paging<100> as salvo::oapi::EndpointArgRegister>::register(c, op, "");
    }
}

/// List vouchers: filter by `status` (active, redeemed, expired, revoked), `search` (part of the
/// code), `batchId`; `sort` by createdAt (default, newest first), code, expiresAt, redeemedAt,
/// status (prefix `-` for descending).
#[allow(clippy::too_many_arguments)]
#[endpoint(
    tags("vouchers"),
    security(("bearer" = [], "api_key" = [])),
    status_codes(200, 400, 401, 403, 503),
    parameters(
        ("status" = Option<crate::doc::VoucherStatus>, Query),
        ("search" = Option<String>, Query, max_length = 64, pattern = "^[^\\u0000]*$", description = "Part of the code"),
        ("batchId" = Option<Uuid>, Query),
        ("sort" = Option<crate::doc::VoucherSort>, Query),
    )
)]
pub async fn list(
    query: Query<VoucherQuery>,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<VoucherList>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let VoucherQuery {
        filter,
        sort,
        page: p,
    } = query.0;
    let (rows, total) = vouchers::list(&st.db, s.client_id, &filter, sort, p).await?;
    Ok(ok(VoucherList {
        vouchers: rows,
        pagination: p.pagination(total).into(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokeResult {
    pub voucher: Voucher,
    /// `false` when the voucher had been revoked before (the call is idempotent).
    pub revoked_now: bool,
}

/// Revoke a voucher. A redeemed voucher answers 409; a revoked one answers 200 again.
#[endpoint(
    tags("vouchers"),
    security(("bearer" = [], "api_key" = [])),
    status_codes(200, 400, 401, 403, 404, 409, 503),
    parameters(("id" = i64, Path, minimum = 1, description = "The voucher's id"))
)]
pub async fn revoke(
    id: PathParam<String>,
    req: &mut Request,
    depot: &mut Depot,
) -> ApiResult<Json<Envelope<RevokeResult>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let id = id
        .trim()
        .parse()
        .ok()
        .filter(|n: &i64| *n > 0)
        .map(VoucherId)
        .ok_or_else(|| AppError::validation("id", "must be a positive whole number"))?;
    let mut tx = st.db.begin().await?;
    let outcome = vouchers::revoke(&mut tx, s.client_id, id, Some(s.staff_id)).await?;
    if outcome == vouchers::Revoked::Now {
        let entry = audit::Entry::new(
            s.client_id,
            audit::Actor::Staff(s.staff_id),
            audit::AuditAction::VouchersRevoke,
        )
        .target("voucher", id)
        .origin(client_ip(req), request_id(depot));
        audit::record(&mut *tx, &entry).await?;
    }
    tx.commit().await?;
    let v = vouchers::get(&st.db, s.client_id, id).await?;
    Ok(ok(RevokeResult {
        voucher: v,
        revoked_now: outcome == vouchers::Revoked::Now,
    }))
}

/// Voucher counts by status. `active + redeemed + expired + revoked = total` always holds.
#[endpoint(
    tags("vouchers"),
    security(("bearer" = [], "api_key" = [])),
    status_codes(200, 401, 403, 503)
)]
pub async fn stats(depot: &mut Depot) -> ApiResult<Json<Envelope<vouchers::Stats>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    Ok(ok(vouchers::stats(&st.db, s.client_id).await?))
}
