//! `/partner/vouchers/*` (partner JWT + X-API-Key of the same client).

use salvo::oapi::ToSchema;
use salvo::prelude::*;
use serde::Serialize;

use crate::envelope::{ok, Envelope};
use crate::error::ApiResult;
use crate::middleware::{staff, state};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(example = json!({"total": 500, "active": 200, "redeemed": 250, "expired": 30, "revoked": 20, "redemptionRate": 50.0})))]
pub struct VoucherStats {
    pub total: i64,
    pub active: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub revoked: i64,
    /// redeemed ÷ total × 100, one decimal.
    pub redemption_rate: f64,
}

/// Voucher counts by status. `active + redeemed + expired + revoked = total` always holds:
/// `expired` counts vouchers that are neither redeemed nor revoked and whose expiry has passed.
#[endpoint(tags("vouchers"), security(("bearer" = [], "api_key" = [])))]
pub async fn stats(depot: &mut Depot) -> ApiResult<Json<Envelope<VoucherStats>>> {
    let st = state(depot).clone();
    let s = staff(depot)?;
    let (total, active, redeemed, expired, revoked): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE status = 'active' AND (expires_at IS NULL OR expires_at > now())),
                count(*) FILTER (WHERE status = 'redeemed'),
                count(*) FILTER (WHERE status = 'active' AND expires_at <= now()),
                count(*) FILTER (WHERE status = 'revoked')
         FROM vouchers WHERE client_id = $1",
    )
    .bind(s.client_id)
    .fetch_one(&st.db)
    .await?;
    let rate = if total == 0 {
        0.0
    } else {
        (redeemed as f64 * 1000.0 / total as f64).round() / 10.0
    };
    Ok(ok(VoucherStats {
        total,
        active,
        redeemed,
        expired,
        revoked,
        redemption_rate: rate,
    }))
}
