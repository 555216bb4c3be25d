//! Members of a partner's programme: registration through a voucher, login, and the partner's
//! member list and detail (activity figures come from the summary the event pipeline keeps).

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};

use crate::domain::auth::{hash_password, validate_password_strength};
use crate::domain::ids::{ClientId, MemberId, VoucherId};
use crate::domain::pagination::{Direction, Page, Sort};
pub use crate::domain::status::MemberStatus;
use crate::error::{AppError, AppResult, FieldError};
use crate::pg::vouchers::{self, VoucherStatus};
use crate::pg::{audit, sessions, staff::normalize_email};

/// Start (as an instant) of the 30-day activity window: today and the 29 days before it, in the
/// client's timezone.
pub fn active_since(tz: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&tz).date_naive();
    let first = today.checked_sub_days(Days::new(29)).unwrap_or(today);
    tz.from_local_datetime(&first.and_time(NaiveTime::MIN))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub id: MemberId,
    pub client_id: ClientId,
    pub email: String,
    pub name: String,
    pub registered_at: DateTime<Utc>,
    pub voucher_code: Option<String>,
    pub first_active_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub watch_seconds: i64,
    pub class_views: i64,
    pub active_days: i32,
    pub favorite_category: Option<String>,
}

// A member as partner lists show it. A plain comment: a doc comment would become the schema's
// description; the schema keeps the name it had as the API's own type.
#[derive(Debug, Clone, Serialize, salvo_oapi::ToSchema)]
#[serde(rename_all = "camelCase")]
#[salvo(schema(name = "portal_api.routes.members.MemberRowDto"))]
pub struct MemberSummary {
    pub id: MemberId,
    pub name: String,
    pub email: String,
    /// `active` when the member watched anything in the last 30 days (client's timezone).
    pub status: MemberStatus,
    pub voucher_code: Option<String>,
    pub registered_at: DateTime<Utc>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub total_watch_time_minutes: i64,
    pub classes_watched: i64,
}

impl MemberRow {
    pub fn summary(&self, active_since: DateTime<Utc>) -> MemberSummary {
        MemberSummary {
            id: self.id,
            name: self.name.clone(),
            email: self.email.clone(),
            status: if self.last_active_at.is_some_and(|t| t >= active_since) {
                MemberStatus::Active
            } else {
                MemberStatus::Inactive
            },
            voucher_code: self.voucher_code.clone(),
            registered_at: self.registered_at,
            last_active_at: self.last_active_at,
            total_watch_time_minutes: crate::domain::minutes(self.watch_seconds),
            classes_watched: self.class_views,
        }
    }
}

/// The columns of [`MemberRow`] for lists built at run time (the checked queries below spell them
/// out, as `query_as!` needs a literal).
const SELECT: &str = "SELECT m.id, m.client_id, m.email, m.name, m.registered_at, v.code AS voucher_code,
        m.first_active_at, m.last_active_at, m.watch_seconds, m.class_views, m.active_days, m.favorite_category
    FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id";

/// [`SELECT`] with the number of rows matched before the page is cut (`total`).
const SELECT_COUNTED: &str = "SELECT m.id, m.client_id, m.email, m.name, m.registered_at, v.code AS voucher_code,
        m.first_active_at, m.last_active_at, m.watch_seconds, m.class_views, m.active_days, m.favorite_category,
        count(*) OVER () AS total
    FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id";

/// A member row with its password hash, for login. `Debug` leaves the hash out.
#[derive(Clone)]
pub struct LoginRow {
    pub member: MemberRow,
    pub password_hash: String,
}

impl std::fmt::Debug for LoginRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRow")
            .field("member", &self.member)
            .field("password_hash", &crate::config::REDACTED)
            .finish()
    }
}

pub struct Registration<'a> {
    pub client_id: ClientId,
    pub voucher_code: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub name: &'a str,
}

pub fn validate_registration(r: &Registration<'_>) -> AppResult<String> {
    let mut errors = Vec::new();
    let email = match normalize_email(r.email) {
        Ok(e) => Some(e),
        Err(_) => {
            errors.push(FieldError::new("email", "must be a valid email address"));
            None
        }
    };
    if let Err(e) = validate_password_strength(r.password) {
        errors.extend(e.details().iter().cloned());
    }
    if r.name.trim().is_empty() || r.name.chars().count() > 200 || r.name.contains('\0') {
        errors.push(FieldError::new(
            "name",
            "must be 1 to 200 characters, not blank, without NUL",
        ));
    }
    if !vouchers::code_shape_ok(r.voucher_code) {
        errors.push(FieldError::new(
            "voucherCode",
            "must be 1 to 40 printable ASCII characters",
        ));
    }
    match (errors.is_empty(), email) {
        (true, Some(e)) => Ok(e),
        _ => Err(AppError::validation_many(errors)),
    }
}

/// Why a registration with a voucher of this status (`None`: no such code) is refused.
pub fn voucher_refusal(status: Option<VoucherStatus>) -> AppError {
    match status {
        Some(VoucherStatus::Redeemed) => AppError::conflict(
            "VOUCHER_REDEEMED",
            "this voucher code has already been used",
        ),
        Some(VoucherStatus::Expired) => AppError::Unprocessable {
            code: "VOUCHER_EXPIRED",
            message: "this voucher code has expired".into(),
        },
        Some(VoucherStatus::Revoked) => AppError::Unprocessable {
            code: "VOUCHER_REVOKED",
            message: "this voucher code has been revoked".into(),
        },
        Some(VoucherStatus::Active) | None => AppError::NotFound("voucher code not found".into()),
    }
}

/// Creates the member and redeems the voucher in one transaction. Of any number of concurrent
/// registrations with one code exactly one succeeds; the others get 409 and leave nothing behind.
/// Returns the member and a new refresh token.
pub async fn register(
    pool: &PgPool,
    r: Registration<'_>,
    origin: (Option<std::net::IpAddr>, Option<String>),
) -> AppResult<(MemberRow, String)> {
    let email = validate_registration(&r)?;
    let password_hash = hash_password(r.password.to_string()).await?;
    let code = vouchers::normalize_code(r.voucher_code);
    let mut tx = pool.begin().await?;
    // The row lock taken by this UPDATE serialises concurrent redemptions of one code; the losers
    // re-check `status = 'active'` after the winner commits and update nothing.
    let voucher_id = sqlx::query_scalar!(
        r#"UPDATE vouchers SET status = 'redeemed', redeemed_at = now()
           WHERE client_id = $1 AND code = $2 AND status = 'active'
             AND (expires_at IS NULL OR expires_at > now())
           RETURNING id AS "id: VoucherId""#,
        r.client_id as ClientId,
        &code,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(voucher_id) = voucher_id else {
        let status = sqlx::query_scalar!(
            r#"SELECT v.status AS "status!: VoucherStatus"
               FROM vouchers_with_status v WHERE v.client_id = $1 AND v.code = $2"#,
            r.client_id as ClientId,
            &code,
        )
        .fetch_optional(&mut *tx)
        .await?;
        return Err(voucher_refusal(status));
    };
    let id = MemberId::new_v7();
    sqlx::query!(
        "INSERT INTO members (id, client_id, email, name, password_hash, voucher_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id as MemberId,
        r.client_id as ClientId,
        &email,
        r.name.trim(),
        password_hash,
        voucher_id as VoucherId,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match AppError::from(e) {
        AppError::Conflict { .. } => AppError::conflict(
            "EMAIL_TAKEN",
            "a member with this email is already registered",
        ),
        other => other,
    })?;
    sqlx::query!(
        "UPDATE vouchers SET redeemed_by = $2 WHERE id = $1",
        voucher_id as VoucherId,
        id as MemberId,
    )
    .execute(&mut *tx)
    .await?;
    let refresh =
        sessions::issue(&mut tx, r.client_id, sessions::Subject::Member(id), None).await?;
    let entry = audit::Entry::new(
        r.client_id,
        audit::Actor::Member(id),
        audit::AuditAction::MemberRegister,
    )
    .email(&email)
    .target("voucher", voucher_id)
    .origin(origin.0, origin.1);
    audit::record(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok((get(pool, r.client_id, id).await?, refresh))
}

/// Member login lookup within the key's client: the member and its password hash, in one query.
pub async fn find_for_login(
    pool: &PgPool,
    client_id: ClientId,
    email: &str,
) -> AppResult<Option<LoginRow>> {
    let row = sqlx::query!(
        r#"SELECT m.id AS "id: MemberId", m.client_id AS "client_id: ClientId", m.email, m.name,
               m.registered_at, v.code AS "voucher_code?", m.first_active_at, m.last_active_at,
               m.watch_seconds, m.class_views, m.active_days, m.favorite_category, m.password_hash
           FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id
           WHERE m.client_id = $1 AND m.email = $2"#,
        client_id as ClientId,
        email,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| LoginRow {
        member: MemberRow {
            id: r.id,
            client_id: r.client_id,
            email: r.email,
            name: r.name,
            registered_at: r.registered_at,
            voucher_code: r.voucher_code,
            first_active_at: r.first_active_at,
            last_active_at: r.last_active_at,
            watch_seconds: r.watch_seconds,
            class_views: r.class_views,
            active_days: r.active_days,
            favorite_category: r.favorite_category,
        },
        password_hash: r.password_hash,
    }))
}

pub async fn get(pool: &PgPool, client_id: ClientId, id: MemberId) -> AppResult<MemberRow> {
    sqlx::query_as!(
        MemberRow,
        r#"SELECT m.id AS "id: MemberId", m.client_id AS "client_id: ClientId", m.email, m.name,
               m.registered_at, v.code AS "voucher_code?", m.first_active_at, m.last_active_at,
               m.watch_seconds, m.class_views, m.active_days, m.favorite_category
           FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id
           WHERE m.client_id = $1 AND m.id = $2"#,
        client_id as ClientId,
        id as MemberId,
    )
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| AppError::not_found("member"))
}

pub const SORTS: &[(&str, &str)] = &[
    ("name", "lower(m.name)"),
    ("email", "m.email"),
    ("registeredAt", "m.registered_at"),
    ("lastActiveAt", "m.last_active_at"),
    ("watchTime", "m.watch_seconds"),
];

/// A client's member totals for the dashboard: all members, active since `since`, all-time watch
/// seconds and class views, and registrations in the last period (since `since`) and the one
/// before (`before_since` to `since`).
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub total: i64,
    pub active: i64,
    pub watch_seconds: i64,
    pub class_views: i64,
    pub registered_since: i64,
    pub registered_before: i64,
}

pub async fn totals(
    pool: &PgPool,
    client_id: ClientId,
    since: DateTime<Utc>,
    before_since: DateTime<Utc>,
) -> AppResult<Totals> {
    Ok(sqlx::query_as!(
        Totals,
        r#"SELECT count(*) AS "total!",
                count(*) FILTER (WHERE last_active_at >= $2) AS "active!",
                COALESCE(sum(watch_seconds), 0)::bigint AS "watch_seconds!",
                COALESCE(sum(class_views), 0)::bigint AS "class_views!",
                count(*) FILTER (WHERE registered_at >= $2) AS "registered_since!",
                count(*) FILTER (WHERE registered_at >= $3 AND registered_at < $2) AS "registered_before!"
         FROM members WHERE client_id = $1"#,
        client_id as ClientId,
        since,
        before_since,
    )
    .fetch_one(pool)
    .await?)
}

pub fn parse_sort(raw: Option<&str>) -> AppResult<Sort> {
    Sort::parse(raw, SORTS, ("registeredAt", Direction::Desc))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ListFilter {
    pub search: Option<String>,
    /// Members of this status only.
    pub status: Option<MemberStatus>,
}

/// The `status` filter: empty means not given; an unknown value is a 400 naming `status`.
pub fn parse_status(raw: Option<&str>) -> AppResult<Option<MemberStatus>> {
    MemberStatus::parse_param(raw, "status")
}

/// Appends the list filter: the client's members, narrowed by the filters that are given.
fn push_filter(
    q: &mut QueryBuilder<Postgres>,
    client_id: ClientId,
    active_since: DateTime<Utc>,
    f: &ListFilter,
    search: Option<String>,
) {
    if let Some(search) = search {
        // The candidates come from `member_search` (migration 20261125000011: the client with
        // `lower(name) || E'\n' || email`, in one scan of its trigram index), gathered into an
        // array first; the members are then read by primary key, and their columns on their own
        // decide. The client is checked on `members` too, written `IS NOT DISTINCT FROM` (the
        // same for a NOT NULL column) because Postgres cannot use that form in an index scan:
        // as `=`, without statistics it read the client's whole range of an index on
        // (client, name, id) for every candidate instead of the primary key.
        q.push(
            " WHERE m.id = ANY(ARRAY(SELECT s.member_id FROM member_search s WHERE s.client_id = ",
        )
        .push_bind(client_id)
        .push(" AND s.text LIKE ")
        .push_bind(search.clone())
        .push(")) AND m.client_id IS NOT DISTINCT FROM ")
        .push_bind(client_id)
        .push(" AND (lower(m.name) LIKE ")
        .push_bind(search.clone())
        .push(" OR m.email LIKE ")
        .push_bind(search)
        .push(")");
    } else {
        q.push(" WHERE m.client_id = ").push_bind(client_id);
    }
    match f.status {
        None => {}
        Some(MemberStatus::Active) => {
            q.push(" AND m.last_active_at >= ").push_bind(active_since);
        }
        Some(MemberStatus::Inactive) => {
            q.push(" AND (m.last_active_at IS NULL OR m.last_active_at < ")
                .push_bind(active_since)
                .push(")");
        }
    }
}

pub async fn list(
    pool: &PgPool,
    client_id: ClientId,
    active_since: DateTime<Utc>,
    f: &ListFilter,
    sort: Sort,
    page: Page,
) -> AppResult<(Vec<MemberRow>, i64)> {
    let search = f
        .search
        .as_deref()
        .map(|s| super::like_pattern(&s.to_lowercase()));
    if search.is_some() {
        // A search matches few members, found through the trigram indexes: one statement finds
        // them once and returns the page with their number.
        let mut q = QueryBuilder::<Postgres>::new(SELECT_COUNTED);
        push_filter(&mut q, client_id, active_since, f, search.clone());
        q.push(" ORDER BY ").push(sort.order_by("m.id"));
        q.push(" LIMIT ").push_bind(page.limit_i64());
        q.push(" OFFSET ").push_bind(page.offset());
        let rows = q.build_query_as::<Counted>().fetch_all(pool).await?;
        if let Some(first) = rows.first() {
            let total = first.total;
            return Ok((rows.into_iter().map(|c| c.row).collect(), total));
        }
        if page.offset() == 0 {
            return Ok((Vec::new(), 0));
        }
        // A page past the end: the number comes from a count of its own.
    }
    let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM members m");
    push_filter(&mut count, client_id, active_since, f, search.clone());
    let total: i64 = count.build_query_scalar().fetch_one(pool).await?;
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    push_filter(&mut q, client_id, active_since, f, search);
    // The ORDER BY expression comes from the SORTS allow-list, never from the request.
    q.push(" ORDER BY ").push(sort.order_by("m.id"));
    q.push(" LIMIT ").push_bind(page.limit_i64());
    q.push(" OFFSET ").push_bind(page.offset());
    let rows = q.build_query_as::<MemberRow>().fetch_all(pool).await?;
    Ok((rows, total))
}

/// A row of a searched page with the number of members the search matched.
#[derive(FromRow)]
struct Counted {
    #[sqlx(flatten)]
    row: MemberRow,
    total: i64,
}

/// How many members the client has.
pub async fn count(pool: &PgPool, client_id: ClientId) -> AppResult<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM members WHERE client_id = $1"#,
        client_id as ClientId
    )
    .fetch_one(pool)
    .await?)
}

/// Every member of the client in registration order, as a stream (for exports).
pub fn all(
    pool: &PgPool,
    client_id: ClientId,
) -> impl futures::Stream<Item = AppResult<MemberRow>> + Send + '_ {
    use futures::TryStreamExt;
    sqlx::query_as!(
        MemberRow,
        r#"SELECT m.id AS "id: MemberId", m.client_id AS "client_id: ClientId", m.email, m.name,
               m.registered_at, v.code AS "voucher_code?", m.first_active_at, m.last_active_at,
               m.watch_seconds, m.class_views, m.active_days, m.favorite_category
           FROM members m LEFT JOIN vouchers v ON v.id = m.voucher_id AND v.client_id = m.client_id
           WHERE m.client_id = $1 ORDER BY m.registered_at, m.id"#,
        client_id as ClientId,
    )
    .fetch(pool)
    .map_err(AppError::from)
}

/// Moves a member's registration `days_ago` days into the past (demo data only).
pub async fn backdate_registration(
    pool: &PgPool,
    client_id: ClientId,
    id: MemberId,
    days_ago: i64,
) -> AppResult<()> {
    sqlx::query!(
        "UPDATE members SET registered_at = now() - make_interval(days => $3)
         WHERE client_id = $1 AND id = $2",
        client_id as ClientId,
        id as MemberId,
        days_ago as i32,
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_window_starts_at_local_midnight_29_days_back() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 23, 30, 0).unwrap();
        // In Berlin it is already 26 Nov 00:30: the window starts 28 Oct 00:00 Berlin (UTC+1).
        let since = active_since(chrono_tz::Europe::Berlin, now);
        assert_eq!(since, Utc.with_ymd_and_hms(2026, 10, 27, 23, 0, 0).unwrap());
        let utc = active_since(chrono_tz::UTC, now);
        assert_eq!(utc, Utc.with_ymd_and_hms(2026, 10, 27, 0, 0, 0).unwrap());
    }
}
