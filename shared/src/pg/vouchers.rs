//! Voucher codes: generation (collision-safe, one round trip in the common case), listing with the
//! computed `expired` status, revocation, statistics, and the lookups the app's onboarding uses.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Transaction};

use crate::domain::ids::{ClientId, MemberId, StaffId, VoucherBatchId, VoucherId};
use crate::domain::json::FromJson;
use crate::domain::pagination::{Direction, Page, Sort};
pub use crate::domain::status::VoucherStatus;
use crate::error::{AppError, AppResult, FieldError};

/// Crockford base32: no I, L, O, U, so codes survive being read aloud and typed.
pub const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
pub const CODE_LEN: usize = 8;
pub const MAX_QUANTITY: i64 = 500;
pub const MAX_PREFIX: usize = 16;

// A voucher, as the partner routes return it. Plain comments on the served types: a doc comment
// would become the schema's description; the schema keeps the name it had as the API's own type.
#[derive(Debug, Clone, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "portal_api.routes.vouchers.VoucherDto", example = json!({"id": 1, "code": "STUDIO-7K3M9Q2X", "status": "active", "batchId": "01a212bf-0aca-743e-b263-3e36ed0b7418", "expiresAt": "2026-12-31T23:59:59Z", "createdAt": "2026-11-25T12:00:00Z", "redeemedAt": null, "redeemedBy": null, "revokedAt": null})))]
pub struct Voucher {
    pub id: VoucherId,
    pub code: String,
    /// `active | redeemed | expired | revoked` (`expired` follows from `expiresAt`).
    pub status: VoucherStatus,
    pub batch_id: VoucherBatchId,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub redeemed_at: Option<DateTime<Utc>>,
    pub redeemed_by: Option<RedeemedBy>,
    pub revoked_at: Option<DateTime<Utc>>,
}

// The member who redeemed a voucher.
#[derive(Debug, Clone, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "portal_api.routes.vouchers.RedeemedBy"))]
pub struct RedeemedBy {
    pub id: MemberId,
    pub name: String,
    pub email: String,
}

/// A voucher as the queries read it: the redeeming member's columns side by side (null when no
/// member redeemed it, or the member is gone).
#[derive(Debug, Clone, FromRow)]
struct VoucherRow {
    id: VoucherId,
    code: String,
    status: VoucherStatus,
    batch_id: VoucherBatchId,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    redeemed_at: Option<DateTime<Utc>>,
    redeemed_by_id: Option<MemberId>,
    redeemed_by_name: Option<String>,
    redeemed_by_email: Option<String>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<VoucherRow> for Voucher {
    fn from(v: VoucherRow) -> Self {
        let redeemed_by = match (v.redeemed_by_id, v.redeemed_by_name, v.redeemed_by_email) {
            (Some(id), Some(name), Some(email)) => Some(RedeemedBy { id, name, email }),
            _ => None,
        };
        Self {
            id: v.id,
            code: v.code,
            status: v.status,
            batch_id: v.batch_id,
            expires_at: v.expires_at,
            created_at: v.created_at,
            redeemed_at: v.redeemed_at,
            redeemed_by,
            revoked_at: v.revoked_at,
        }
    }
}

/// The columns of [`VoucherRow`] for lists built at run time (the checked queries below spell them
/// out, as `query_as!` needs a literal). `vouchers_with_status` shows `expired` for active vouchers
/// past `expires_at`.
const SELECT: &str = "SELECT v.id, v.code, v.status, v.batch_id, v.expires_at, v.created_at, v.redeemed_at,
        m.id AS redeemed_by_id, m.name AS redeemed_by_name, m.email AS redeemed_by_email, v.revoked_at
    FROM vouchers_with_status v LEFT JOIN members m ON m.id = v.redeemed_by AND m.client_id = v.client_id";

/// A validated generation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generate {
    pub quantity: i64,
    pub prefix: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl FromJson for Generate {
    /// The body of `POST /partner/vouchers`; unknown fields are refused with the other problems.
    fn from_json(body: &serde_json::Value) -> AppResult<Self> {
        let Some(obj) = body.as_object() else {
            return Err(AppError::bad_request("body must be a JSON object"));
        };
        let unknown: Vec<FieldError> = obj
            .keys()
            .filter(|k| !["quantity", "prefix", "expiresAt"].contains(&k.as_str()))
            .map(|k| FieldError::new(k.clone(), "is not a voucher field"))
            .collect();
        let parsed = Self::validate(obj.get("quantity"), obj.get("prefix"), obj.get("expiresAt"));
        if unknown.is_empty() {
            return parsed;
        }
        match parsed {
            Ok(_) => Err(AppError::validation_many(unknown)),
            Err(AppError::Validation { details, .. }) => Err(AppError::validation_many(
                unknown.into_iter().chain(details).collect(),
            )),
            Err(e) => Err(e),
        }
    }
}

impl salvo_oapi::ToSchema for Generate {
    fn to_schema(c: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        body_schema::GenerateRequest::to_schema(c)
    }
}

/// The JSON Schema of the generation body ([`Generate::validate`] is the one reader; this struct
/// only describes the wire form).
mod body_schema {
    #![allow(dead_code)]
    use chrono::{DateTime, Utc};
    use salvo_oapi::ToSchema;
    use serde::Deserialize;

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[salvo(schema(name = "GenerateRequest", example = json!({"quantity": 50, "prefix": "STUDIO", "expiresAt": "2026-12-31T23:59:59Z"})))]
    pub struct GenerateRequest {
        /// 1 to 500.
        #[salvo(schema(minimum = 1, maximum = 500))]
        pub quantity: i64,
        /// Up to 16 of A-Z, a-z and 0-9 (upper-cased; surrounding whitespace is ignored; empty means
        /// none). Codes are `PREFIX-` + 8 Crockford base32 characters.
        #[salvo(schema(
            pattern = "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[A-Za-z0-9]{0,16}[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$"
        ))]
        pub prefix: Option<String>,
        /// Optional, in the future (RFC 3339).
        pub expires_at: Option<DateTime<Utc>>,
    }
}

impl Generate {
    /// Validates raw input: quantity 1–500, prefix ≤ 16 of `[A-Z0-9]` (upper-cased), expiry in the future.
    pub fn validate(
        quantity: Option<&serde_json::Value>,
        prefix: Option<&serde_json::Value>,
        expires_at: Option<&serde_json::Value>,
    ) -> AppResult<Self> {
        let mut errors = Vec::new();
        let quantity = match quantity {
            None => {
                errors.push(FieldError::new("quantity", "is required"));
                0
            }
            Some(v) => match crate::domain::json::whole_number(v) {
                Some(q) if (1..=MAX_QUANTITY).contains(&q) => q,
                _ => {
                    errors.push(FieldError::new(
                        "quantity",
                        format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                    ));
                    0
                }
            },
        };
        let prefix = match prefix {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
            Some(serde_json::Value::String(s)) => {
                let p = s.trim().to_ascii_uppercase();
                if p.len() <= MAX_PREFIX && p.chars().all(|c| c.is_ascii_alphanumeric()) {
                    Some(p)
                } else {
                    errors.push(FieldError::new(
                        "prefix",
                        format!("must be at most {MAX_PREFIX} letters A-Z or digits"),
                    ));
                    None
                }
            }
            Some(_) => {
                errors.push(FieldError::new("prefix", "must be a string"));
                None
            }
        };
        let expires_at = match expires_at {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) if t.with_timezone(&Utc) > Utc::now() => Some(t.with_timezone(&Utc)),
                Ok(_) => {
                    errors.push(FieldError::new("expiresAt", "must be in the future"));
                    None
                }
                Err(_) => {
                    errors.push(FieldError::new(
                        "expiresAt",
                        "must be an RFC 3339 timestamp such as 2026-12-31T23:59:59Z",
                    ));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("expiresAt", "must be a string"));
                None
            }
        };
        if errors.is_empty() {
            Ok(Self {
                quantity,
                prefix,
                expires_at,
            })
        } else {
            Err(AppError::validation_many(errors))
        }
    }
}

pub fn random_code(prefix: Option<&str>) -> String {
    let mut rng = rand::rng();
    let body: String = (0..CODE_LEN)
        .map(|_| CROCKFORD[rng.random_range(0..32)] as char)
        .collect();
    match prefix {
        Some(p) => format!("{p}-{body}"),
        None => body,
    }
}

/// Normalises a code typed by a person: trimmed, upper-case, and Crockford's look-alikes mapped
/// (O→0, I/L→1) in the random part.
/// What a code sent by the app may look like: 1 to 40 printable ASCII characters, not only spaces
/// (real codes are `PREFIX-` and 8 Crockford base32 characters; anything else is not found).
pub fn code_shape_ok(code: &str) -> bool {
    code.len() <= 40 && code.bytes().all(|b| (b' '..=b'~').contains(&b)) && !code.trim().is_empty()
}

pub fn normalize_code(code: &str) -> String {
    let upper = code.trim().to_ascii_uppercase();
    let (prefix, body) = match upper.rsplit_once('-') {
        Some((p, b)) => (Some(p), b),
        None => (None, upper.as_str()),
    };
    let body: String = body
        .chars()
        .map(|c| match c {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    match prefix {
        Some(p) => format!("{p}-{body}"),
        None => body,
    }
}

/// Inserts `g.quantity` new vouchers in one batch. Codes that collide with existing ones (platform-
/// wide) are skipped by `ON CONFLICT DO NOTHING` and regenerated; with 40 random bits per code a
/// second round is practically never needed.
pub async fn generate(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    created_by: Option<StaffId>,
    g: &Generate,
) -> AppResult<(VoucherBatchId, Vec<Voucher>)> {
    let batch_id = VoucherBatchId::new_v7();
    let mut ids: Vec<VoucherId> = Vec::with_capacity(g.quantity as usize);
    for _round in 0..10 {
        let missing = g.quantity as usize - ids.len();
        if missing == 0 {
            break;
        }
        let mut codes: Vec<String> = (0..missing)
            .map(|_| random_code(g.prefix.as_deref()))
            .collect();
        codes.sort();
        codes.dedup();
        let inserted = sqlx::query_scalar!(
            r#"INSERT INTO vouchers (client_id, code, batch_id, expires_at, created_by)
               SELECT $1, c, $2, $3, $4 FROM UNNEST($5::text[]) AS c
               ON CONFLICT (code) DO NOTHING
               RETURNING id AS "id: VoucherId""#,
            client_id as ClientId,
            batch_id as VoucherBatchId,
            g.expires_at,
            created_by as Option<StaffId>,
            &codes,
        )
        .fetch_all(&mut **tx)
        .await?;
        ids.extend(inserted);
    }
    if ids.len() as i64 != g.quantity {
        return Err(AppError::internal("could not find free voucher codes"));
    }
    let vouchers = sqlx::query_as!(
        VoucherRow,
        r#"SELECT v.id AS "id!: VoucherId", v.code AS "code!", v.status AS "status!: VoucherStatus",
               v.batch_id AS "batch_id!: VoucherBatchId", v.expires_at, v.created_at AS "created_at!",
               v.redeemed_at, m.id AS "redeemed_by_id?: MemberId", m.name AS "redeemed_by_name?",
               m.email AS "redeemed_by_email?", v.revoked_at
           FROM vouchers_with_status v
           LEFT JOIN members m ON m.id = v.redeemed_by AND m.client_id = v.client_id
           WHERE v.client_id = $1 AND v.batch_id = $2 ORDER BY v.id"#,
        client_id as ClientId,
        batch_id as VoucherBatchId,
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok((batch_id, vouchers.into_iter().map(Voucher::from).collect()))
}

pub const SORTS: &[(&str, &str)] = &[
    ("createdAt", "v.created_at"),
    ("code", "v.code"),
    ("expiresAt", "v.expires_at"),
    ("redeemedAt", "v.redeemed_at"),
    ("status", "v.status"),
];

pub fn parse_sort(raw: Option<&str>) -> AppResult<Sort> {
    Sort::parse(raw, SORTS, ("createdAt", Direction::Desc))
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<VoucherStatus>,
    pub search: Option<String>,
    pub batch_id: Option<VoucherBatchId>,
}

/// The `status` filter: empty means not given; an unknown value is a 400 naming `status`.
pub fn parse_status(raw: Option<&str>) -> AppResult<Option<VoucherStatus>> {
    VoucherStatus::parse_param(raw, "status")
}

/// Appends the list filter: the client's vouchers, narrowed by the filters that are given.
fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    client_id: ClientId,
    f: &ListFilter,
    search: Option<String>,
) {
    q.push(" WHERE v.client_id = ").push_bind(client_id);
    if let Some(status) = f.status {
        q.push(" AND v.status = ").push_bind(status);
    }
    if let Some(search) = search {
        q.push(" AND v.code ILIKE ").push_bind(search);
    }
    if let Some(batch_id) = f.batch_id {
        q.push(" AND v.batch_id = ").push_bind(batch_id);
    }
}

pub async fn list(
    pool: &PgPool,
    client_id: ClientId,
    f: &ListFilter,
    sort: Sort,
    page: Page,
) -> AppResult<(Vec<Voucher>, i64)> {
    let search = f.search.as_deref().map(super::like_pattern);
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM vouchers_with_status v");
    push_filter(&mut count, client_id, f, search.clone());
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    push_filter(&mut q, client_id, f, search);
    // The ORDER BY expression comes from the SORTS allow-list, never from the request.
    q.push(" ORDER BY ").push(sort.order_by("v.id DESC"));
    q.push(" LIMIT ").push_bind(page.limit_i64());
    q.push(" OFFSET ").push_bind(page.offset());
    let rows = q.build_query_as::<VoucherRow>().fetch_all(pool).await?;
    Ok((rows.into_iter().map(Voucher::from).collect(), total))
}

pub async fn get(pool: &PgPool, client_id: ClientId, id: VoucherId) -> AppResult<Voucher> {
    sqlx::query_as!(
        VoucherRow,
        r#"SELECT v.id AS "id!: VoucherId", v.code AS "code!", v.status AS "status!: VoucherStatus",
               v.batch_id AS "batch_id!: VoucherBatchId", v.expires_at, v.created_at AS "created_at!",
               v.redeemed_at, m.id AS "redeemed_by_id?: MemberId", m.name AS "redeemed_by_name?",
               m.email AS "redeemed_by_email?", v.revoked_at
           FROM vouchers_with_status v
           LEFT JOIN members m ON m.id = v.redeemed_by AND m.client_id = v.client_id
           WHERE v.client_id = $1 AND v.id = $2"#,
        client_id as ClientId,
        id as VoucherId,
    )
    .fetch_optional(pool)
    .await?
    .map(Voucher::from)
    .ok_or_else(|| AppError::not_found("voucher"))
}

/// Outcome of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now.
    Now,
    /// Was revoked before (idempotent).
    Already,
}

/// Revokes a voucher: 409 when it was redeemed, idempotent for revoked ones.
pub async fn revoke(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    id: VoucherId,
    staff_id: Option<StaffId>,
) -> AppResult<Revoked> {
    let status = sqlx::query_scalar!(
        r#"SELECT status AS "status: VoucherStatus" FROM vouchers
           WHERE client_id = $1 AND id = $2 FOR UPDATE"#,
        client_id as ClientId,
        id as VoucherId,
    )
    .fetch_optional(&mut **tx)
    .await?;
    match status {
        None => Err(AppError::not_found("voucher")),
        Some(VoucherStatus::Redeemed) => Err(AppError::conflict(
            "VOUCHER_REDEEMED",
            "a redeemed voucher cannot be revoked",
        )),
        Some(VoucherStatus::Revoked) => Ok(Revoked::Already),
        Some(VoucherStatus::Active | VoucherStatus::Expired) => {
            sqlx::query!(
                "UPDATE vouchers SET status = 'revoked', revoked_at = now(), revoked_by = $3
                 WHERE client_id = $1 AND id = $2",
                client_id as ClientId,
                id as VoucherId,
                staff_id as Option<StaffId>,
            )
            .execute(&mut **tx)
            .await?;
            Ok(Revoked::Now)
        }
    }
}

// Voucher counts by status, as `GET /partner/vouchers/stats` serves them (the schema keeps the
// name it had as the API's own type).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "portal_api.routes.vouchers.VoucherStats", example = json!({"total": 500, "active": 200, "redeemed": 250, "expired": 30, "revoked": 20, "redemptionRate": 50.0})))]
pub struct Stats {
    pub total: i64,
    pub active: i64,
    pub redeemed: i64,
    pub expired: i64,
    pub revoked: i64,
    /// redeemed ÷ total × 100, one decimal.
    pub redemption_rate: f64,
}

/// Counts by status; the four counts always add up to `total` (one snapshot, one statement).
pub async fn stats(pool: &PgPool, client_id: ClientId) -> AppResult<Stats> {
    let c = sqlx::query!(
        r#"SELECT count(*) AS "total!",
                count(*) FILTER (WHERE status = 'active') AS "active!",
                count(*) FILTER (WHERE status = 'redeemed') AS "redeemed!",
                count(*) FILTER (WHERE status = 'expired') AS "expired!",
                count(*) FILTER (WHERE status = 'revoked') AS "revoked!"
         FROM vouchers_with_status WHERE client_id = $1"#,
        client_id as ClientId,
    )
    .fetch_one(pool)
    .await?;
    let (total, active, redeemed, expired, revoked) =
        (c.total, c.active, c.redeemed, c.expired, c.revoked);
    let redemption_rate = if total == 0 {
        0.0
    } else {
        (redeemed as f64 * 1000.0 / total as f64).round() / 10.0
    };
    Ok(Stats {
        total,
        active,
        redeemed,
        expired,
        revoked,
        redemption_rate,
    })
}

/// What the app learns when validating a code: nothing distinguishes "another partner's code" from
/// "no such code".
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub valid: bool,
    /// `None`: no such code (of this client).
    pub status: Option<VoucherStatus>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl Validation {
    /// `active | redeemed | expired | revoked | not_found`, as the app is told.
    pub fn status_word(&self) -> &'static str {
        self.status.map_or("not_found", VoucherStatus::as_str)
    }
}

pub async fn validate_code(
    pool: &PgPool,
    client_id: ClientId,
    code: &str,
) -> AppResult<Validation> {
    let row = sqlx::query!(
        r#"SELECT v.status AS "status!: VoucherStatus", v.expires_at
           FROM vouchers_with_status v WHERE v.client_id = $1 AND v.code = $2"#,
        client_id as ClientId,
        normalize_code(code),
    )
    .fetch_optional(pool)
    .await?
    .map(|r| (r.status, r.expires_at));
    Ok(match row {
        Some((status, expires_at)) => Validation {
            valid: status == VoucherStatus::Active,
            status: Some(status),
            expires_at,
        },
        None => Validation {
            valid: false,
            status: None,
            expires_at: None,
        },
    })
}

/// How many of the client's vouchers have `status` (all of them when `None`).
pub async fn count_with_status(
    pool: &PgPool,
    client_id: ClientId,
    status: Option<VoucherStatus>,
) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM vouchers_with_status v
           WHERE v.client_id = $1 AND ($2::text IS NULL OR v.status = $2)"#,
        client_id as ClientId,
        status as Option<VoucherStatus>,
    )
    .fetch_one(pool)
    .await?)
}

/// The client's vouchers with `status` (all of them when `None`) in id order, as a stream (for
/// exports).
pub fn all_with_status<'a>(
    pool: &'a PgPool,
    client_id: ClientId,
    status: Option<VoucherStatus>,
) -> impl futures::Stream<Item = AppResult<Voucher>> + Send + 'a {
    use futures::TryStreamExt;
    sqlx::query_as!(
        VoucherRow,
        r#"SELECT v.id AS "id!: VoucherId", v.code AS "code!", v.status AS "status!: VoucherStatus",
               v.batch_id AS "batch_id!: VoucherBatchId", v.expires_at, v.created_at AS "created_at!",
               v.redeemed_at, m.id AS "redeemed_by_id?: MemberId", m.name AS "redeemed_by_name?",
               m.email AS "redeemed_by_email?", v.revoked_at
           FROM vouchers_with_status v
           LEFT JOIN members m ON m.id = v.redeemed_by AND m.client_id = v.client_id
           WHERE v.client_id = $1 AND ($2::text IS NULL OR v.status = $2) ORDER BY v.id"#,
        client_id as ClientId,
        status as Option<VoucherStatus>,
    )
    .fetch(pool)
    .map_ok(Voucher::from)
    .map_err(AppError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_are_prefix_dash_eight_crockford_characters() {
        let c = random_code(Some("STUDIO"));
        let (p, body) = c.split_once('-').unwrap();
        assert_eq!(p, "STUDIO");
        assert_eq!(body.len(), 8);
        assert!(body.bytes().all(|b| CROCKFORD.contains(&b)));
        assert_eq!(random_code(None).len(), 8);
    }

    #[test]
    fn typed_codes_are_normalised() {
        assert_eq!(normalize_code(" studio-ab0il123 "), "STUDIO-AB011123");
        assert_eq!(normalize_code("abcd-efgh"), "ABCD-EFGH");
    }

    #[test]
    fn generation_input_is_validated() {
        let ok = Generate::validate(Some(&json!(50)), Some(&json!("studio")), None).unwrap();
        assert_eq!(ok.prefix.as_deref(), Some("STUDIO"));
        for (q, p, e) in [
            (json!(0), json!(null), json!(null)),
            (json!(501), json!(null), json!(null)),
            (json!("5"), json!(null), json!(null)),
            (json!(1.5), json!(null), json!(null)),
            (json!(5), json!("ÄÖ"), json!(null)),
            (json!(5), json!("A".repeat(17)), json!(null)),
            (json!(5), json!("A-B"), json!(null)),
            (json!(5), json!(null), json!("2020-01-01T00:00:00Z")),
            (json!(5), json!(null), json!("tomorrow")),
        ] {
            assert!(
                Generate::validate(Some(&q), Some(&p), Some(&e)).is_err(),
                "{q} {p} {e}"
            );
        }
        assert!(Generate::validate(None, None, None).is_err());
    }
}
