//! Credentials: argon2id passwords, HS256 access tokens, opaque random secrets (API keys, refresh
//! tokens) stored only as SHA-256 digests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// Access tokens live 15 minutes (SPEC §2).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;
/// Refresh tokens live 30 days.
pub const REFRESH_TOKEN_TTL_DAYS: i64 = 30;
const ISSUER: &str = "partner-portal";

pub const API_KEY_PREFIX: &str = "ppk_";
pub const REFRESH_TOKEN_PREFIX: &str = "prt_";

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A random secret: `prefix` + 32 random bytes (256 bits) in URL-safe base64.
pub fn random_secret(prefix: &str) -> String {
    let mut buf = [0u8; 32];
    rand::rng().fill_bytes(&mut buf);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    )
}

/// How long a password hash waits for a free slot before the request is refused with 503, in
/// milliseconds (`PASSWORD_HASH_WAIT_MS`, set by [`set_hash_wait`]).
static HASH_WAIT_MS: AtomicU64 = AtomicU64::new(2_000);

/// Sets how long password work waits for a slot (a process-wide setting, like the slots).
pub fn set_hash_wait(wait: std::time::Duration) {
    HASH_WAIT_MS.store(
        u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// Slots for argon2 work: as many as the machine has cores. Each hash takes ~19 MiB and a core
/// for tens of milliseconds, so without a bound a burst of logins or registrations fills the
/// blocking pool and the memory of the process.
fn hash_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs argon2 work on the blocking pool once a slot is free; after the configured wait without one the
/// caller gets 503 with `Retry-After` instead.
async fn with_hash_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let wait = std::time::Duration::from_millis(HASH_WAIT_MS.load(Ordering::Relaxed));
    let permit = match tokio::time::timeout(wait, hash_slots().acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => {
            metrics::counter!("portal_password_hash_refused_total").increment(1);
            return Err(AppError::Unavailable {
                dependency: "password checking (busy)",
                retry_after: 1,
            });
        }
    };
    let result = tokio::task::spawn_blocking(work)
        .await
        .map_err(AppError::internal);
    drop(permit);
    result
}

/// Hashes a password with argon2id (default parameters, random salt). CPU-heavy: runs on the
/// blocking pool, at most one per core at a time (see [`with_hash_slot`]).
pub async fn hash_password(password: String) -> AppResult<String> {
    with_hash_slot(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(AppError::internal)
    })
    .await?
}

/// Verifies a password against a PHC string. With `phc = None` it still spends the same time on a
/// dummy hash, so "no such account" and "wrong password" cannot be told apart by timing. Bounded
/// like [`hash_password`].
pub async fn verify_password(password: String, phc: Option<String>) -> AppResult<bool> {
    with_hash_slot(move || {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok();
        ok && known
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"not-a-real-password")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

pub fn validate_password_strength(password: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < 8 {
        return Err(AppError::validation(
            "password",
            "must be at least 8 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(AppError::validation(
            "password",
            "must be at most 1024 bytes",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// Partner staff (portal).
    Partner,
    /// App member.
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// Claims of an access token. `sub` is the staff id (partner) or member id (member).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub client: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    pub typ: TokenType,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_exp = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        validation.set_issuer(&[ISSUER]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Issues an access token; returns it with its lifetime in seconds.
    pub fn issue(
        &self,
        typ: TokenType,
        subject: Uuid,
        client: Uuid,
        role: Option<Role>,
    ) -> AppResult<(String, i64)> {
        let now = Utc::now().timestamp();
        self.issue_with_times(typ, subject, client, role, now, now + ACCESS_TOKEN_TTL_SECS)
            .map(|t| (t, ACCESS_TOKEN_TTL_SECS))
    }

    /// Issues a token with explicit times (tests use it to make expired tokens).
    pub fn issue_with_times(
        &self,
        typ: TokenType,
        subject: Uuid,
        client: Uuid,
        role: Option<Role>,
        iat: i64,
        exp: i64,
    ) -> AppResult<String> {
        let claims = AccessClaims {
            sub: subject,
            client,
            role,
            typ,
            iss: ISSUER.into(),
            iat,
            exp,
            jti: Uuid::new_v4(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)
    }

    /// Verifies signature, algorithm, expiry, issuer and token type.
    pub fn verify(&self, token: &str, expected: TokenType) -> AppResult<AccessClaims> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                AppError::unauthorized(match e.kind() {
                    ErrorKind::ExpiredSignature => "access token has expired",
                    _ => "access token is invalid",
                })
            })?;
        if data.claims.typ != expected {
            return Err(AppError::unauthorized("access token is of the wrong type"));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_prefixed() {
        let a = random_secret(API_KEY_PREFIX);
        let b = random_secret(API_KEY_PREFIX);
        assert!(a.starts_with("ppk_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn tokens_round_trip_and_check_type() {
        let keys = JwtKeys::new("0123456789abcdef0123456789abcdef");
        let (sub, client) = (Uuid::new_v4(), Uuid::new_v4());
        let (t, ttl) = keys
            .issue(TokenType::Partner, sub, client, Some(Role::Viewer))
            .unwrap();
        assert_eq!(ttl, 900);
        let c = keys.verify(&t, TokenType::Partner).unwrap();
        assert_eq!((c.sub, c.client, c.role), (sub, client, Some(Role::Viewer)));
        assert_eq!(
            keys.verify(&t, TokenType::Member).unwrap_err().status(),
            401
        );
        let other = JwtKeys::new("another-secret-another-secret-another");
        assert_eq!(
            other.verify(&t, TokenType::Partner).unwrap_err().status(),
            401
        );
    }

    #[tokio::test]
    async fn passwords_verify_only_with_the_right_password() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong".into(), Some(h)).await.unwrap());
        assert!(!verify_password("x".into(), None).await.unwrap());
    }
}
