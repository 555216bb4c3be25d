//! Refresh tokens: issued per login as a family, rotated on every use. Presenting a token that was
//! already used revokes its whole family (the token was copied; both copies stop working).

use chrono::{Duration, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::domain::auth::{random_secret, sha256, REFRESH_TOKEN_PREFIX, REFRESH_TOKEN_TTL_DAYS};
use crate::domain::ids::{ClientId, FamilyId, MemberId, StaffId};
use crate::error::{AppError, AppResult};
use crate::pg::unscoped;

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
    sqlx::query!(
        "INSERT INTO refresh_tokens (id, family_id, client_id, staff_id, member_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        family.unwrap_or_else(FamilyId::new_v7) as FamilyId,
        client_id as ClientId,
        staff_id as Option<StaffId>,
        member_id as Option<MemberId>,
        &sha256(token.as_bytes())[..],
        Utc::now() + Duration::days(REFRESH_TOKEN_TTL_DAYS),
    )
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
    let Some(found) = unscoped::refresh_token_by_hash(&mut tx, &hash).await? else {
        return Ok(Err(RotateFailure::Unknown));
    };
    let (family_id, client_id) = (found.family_id, found.client_id);
    let subject = match (found.subject(), staff) {
        (Some(s @ Subject::Staff(_)), true) | (Some(s @ Subject::Member(_)), false) => s,
        _ => return Ok(Err(RotateFailure::Unknown)),
    };
    if found.revoked {
        return Ok(Err(RotateFailure::Revoked));
    }
    if found.used {
        sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE client_id = $1 AND family_id = $2 AND revoked_at IS NULL",
            client_id as ClientId,
            family_id as FamilyId,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(Err(RotateFailure::Reused {
            family_id,
            client_id,
        }));
    }
    if found.expired {
        return Ok(Err(RotateFailure::Expired));
    }
    sqlx::query!(
        "UPDATE refresh_tokens SET used_at = now() WHERE client_id = $1 AND token_hash = $2",
        client_id as ClientId,
        &hash[..],
    )
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

/// Takes the transaction-scoped lock of refresh-token family `family`. Rotation, reuse detection
/// and logout of one family all hold it (through [`unscoped::refresh_token_by_hash`]), so none of
/// them can miss a token another one is minting at the same moment: a revocation either sees the
/// successor committed (and revokes it) or runs first (and the rotation then finds its token
/// revoked).
pub(crate) async fn lock_family(
    tx: &mut Transaction<'static, Postgres>,
    family: FamilyId,
) -> AppResult<()> {
    // The two-key form keeps these locks apart from the single-key ones (migrations).
    sqlx::query!(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
        FAMILY_LOCK_CLASS,
        family as FamilyId,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// First key of the advisory locks on refresh-token families.
const FAMILY_LOCK_CLASS: i32 = 0x5046_414d; // "PFAM"

/// Revokes the family of `token` (logout). Unknown tokens are ignored: logout always succeeds.
/// Returns the subject whose session ended, when known.
pub async fn revoke_family(pool: &PgPool, token: &str) -> AppResult<Option<(ClientId, Subject)>> {
    let hash = sha256(token.as_bytes());
    let mut tx = pool.begin().await?;
    let Some(found) = unscoped::refresh_token_by_hash(&mut tx, &hash).await? else {
        return Ok(None);
    };
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, now())
         WHERE client_id = $1 AND family_id = $2",
        found.client_id as ClientId,
        found.family_id as FamilyId,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(found.subject().map(|s| (found.client_id, s)))
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
/// A sweep over every client (listed in [`unscoped`]).
pub async fn prune(pool: &PgPool) -> AppResult<u64> {
    Ok(
        sqlx::query!("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '7 days'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
