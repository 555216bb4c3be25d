//! Refresh tokens: issued per login as a family, rotated on every use. Presenting a token that was
//! already used revokes its whole family (the token was copied; both copies stop working).

use chrono::{Duration, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::auth::{random_secret, sha256, REFRESH_TOKEN_PREFIX, REFRESH_TOKEN_TTL_DAYS};
use crate::domain::ids::{ClientId, FamilyId, MemberId, StaffId};
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Staff(StaffId),
    Member(MemberId),
}

impl Subject {
    fn ids(self) -> (Option<StaffId>, Option<MemberId>) {
        match self {
            Subject::Staff(id) => (Some(id), None),
            Subject::Member(id) => (None, Some(id)),
        }
    }
}

/// Issues a refresh token, starting a new family when `family` is `None`.
pub async fn issue(
    tx: &mut Transaction<'static, Postgres>,
    client_id: ClientId,
    subject: Subject,
    family: Option<FamilyId>,
) -> AppResult<String> {
    let token = random_secret(REFRESH_TOKEN_PREFIX);
    let (staff_id, member_id) = subject.ids();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, client_id, staff_id, member_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(family.unwrap_or_else(FamilyId::new_v7))
    .bind(client_id)
    .bind(staff_id)
    .bind(member_id)
    .bind(&sha256(token.as_bytes())[..])
    .bind(Utc::now() + Duration::days(REFRESH_TOKEN_TTL_DAYS))
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

pub async fn issue_new(pool: &PgPool, client_id: ClientId, subject: Subject) -> AppResult<String> {
    let mut tx = pool.begin().await?;
    let token = issue(&mut tx, client_id, subject, None).await?;
    tx.commit().await?;
    Ok(token)
}

/// The outcome of a successful rotation. `Debug` leaves the new token out.
#[derive(Clone)]
pub struct Rotated {
    pub client_id: ClientId,
    pub subject: Subject,
    pub family_id: FamilyId,
    pub refresh_token: String,
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotated")
            .field("client_id", &self.client_id)
            .field("subject", &self.subject)
            .field("family_id", &self.family_id)
            .field("refresh_token", &crate::config::REDACTED)
            .finish()
    }
}

/// What went wrong with a presented refresh token; all are 401 to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateFailure {
    Unknown,
    Expired,
    Revoked,
    /// Presented a second time: the family is now revoked.
    Reused {
        family_id: FamilyId,
        client_id: ClientId,
    },
}

/// Rotates `token` for the expected kind of subject (`staff` true for partner staff).
pub async fn rotate(
    pool: &PgPool,
    token: &str,
    staff: bool,
) -> AppResult<Result<Rotated, RotateFailure>> {
    if token.len() > 256 || !token.starts_with(REFRESH_TOKEN_PREFIX) {
        return Ok(Err(RotateFailure::Unknown));
    }
    let hash = sha256(token.as_bytes());
    let mut tx = pool.begin().await?;
    if !lock_family_of(&mut tx, &hash).await? {
        return Ok(Err(RotateFailure::Unknown));
    }
    #[allow(clippy::type_complexity)]
    let row: Option<(
        FamilyId,
        ClientId,
        Option<StaffId>,
        Option<MemberId>,
        bool,
        bool,
        bool,
    )> = sqlx::query_as(
        "SELECT family_id, client_id, staff_id, member_id,
                used_at IS NOT NULL, revoked_at IS NOT NULL, expires_at <= now()
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(&hash[..])
    .fetch_optional(&mut *tx)
    .await?;
    let Some((family_id, client_id, staff_id, member_id, used, revoked, expired)) = row else {
        return Ok(Err(RotateFailure::Unknown));
    };
    let subject = match (staff_id, member_id, staff) {
        (Some(id), None, true) => Subject::Staff(id),
        (None, Some(id), false) => Subject::Member(id),
        _ => return Ok(Err(RotateFailure::Unknown)),
    };
    if revoked {
        return Ok(Err(RotateFailure::Revoked));
    }
    if used {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Err(RotateFailure::Reused {
            family_id,
            client_id,
        }));
    }
    if expired {
        return Ok(Err(RotateFailure::Expired));
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(&hash[..])
        .execute(&mut *tx)
        .await?;
    let next = issue(&mut tx, client_id, subject, Some(family_id)).await?;
    tx.commit().await?;
    Ok(Ok(Rotated {
        client_id,
        subject,
        family_id,
        refresh_token: next,
    }))
}

/// Takes the transaction-scoped lock of the family `token_hash` belongs to; `false` when no such
/// token exists. Rotation, reuse detection and logout of one family all hold it, so none of them
/// can miss a token another one is minting at the same moment: a revocation either sees the
/// successor committed (and revokes it) or runs first (and the rotation then finds its token
/// revoked).
async fn lock_family_of(
    tx: &mut Transaction<'static, Postgres>,
    token_hash: &[u8; 32],
) -> AppResult<bool> {
    let family: Option<FamilyId> =
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(&token_hash[..])
            .fetch_optional(&mut **tx)
            .await?;
    let Some(family) = family else {
        return Ok(false);
    };
    // The two-key form keeps these locks apart from the single-key ones (migrations).
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(FAMILY_LOCK_CLASS)
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// First key of the advisory locks on refresh-token families.
const FAMILY_LOCK_CLASS: i32 = 0x5046_414d; // "PFAM"

/// Revokes the family of `token` (logout). Unknown tokens are ignored: logout always succeeds.
/// Returns the subject whose session ended, when known.
pub async fn revoke_family(pool: &PgPool, token: &str) -> AppResult<Option<(ClientId, Subject)>> {
    let hash = sha256(token.as_bytes());
    let mut tx = pool.begin().await?;
    if !lock_family_of(&mut tx, &hash).await? {
        return Ok(None);
    }
    let row: Option<(ClientId, Option<StaffId>, Option<MemberId>)> = sqlx::query_as(
        "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now())
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)
         RETURNING client_id, staff_id, member_id",
    )
    .bind(&hash[..])
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(
        row.and_then(|(client, staff, member)| match (staff, member) {
            (Some(s), _) => Some((client, Subject::Staff(s))),
            (_, Some(m)) => Some((client, Subject::Member(m))),
            _ => None,
        }),
    )
}

/// Everything a 401 for a refresh attempt says (never which of the failures it was, beyond this).
pub fn failure_error(f: RotateFailure) -> AppError {
    match f {
        RotateFailure::Expired => AppError::unauthorized("refresh token has expired"),
        RotateFailure::Reused { .. } => AppError::unauthorized(
            "refresh token was already used; all sessions of this login are revoked",
        ),
        RotateFailure::Revoked => AppError::unauthorized("refresh token has been revoked"),
        RotateFailure::Unknown => AppError::unauthorized("refresh token is invalid"),
    }
}

/// Refresh tokens expired for more than 7 days are deleted (reuse detection needs them a while).
pub async fn prune(pool: &PgPool) -> AppResult<u64> {
    Ok(
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
