//! Credentials: argon2id passwords, HS256 access tokens, opaque random secrets (API keys, refresh
//! tokens) stored only as SHA-256 digests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Argon2, Block, Params, Version};
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::ids::ClientId;

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

/// argon2's working memory (1 KiB blocks), kept from one hash to the next: at most one per slot
/// exists, so the process's hashing memory is slots × 19 MiB however many hashes it runs (a fresh
/// 19 MiB allocation per hash is kept by the allocator's arenas: ~450 MiB after a burst).
type Memory = Vec<Block>;

fn spare_memory() -> &'static Mutex<Vec<Memory>> {
    static SPARE: OnceLock<Mutex<Vec<Memory>>> = OnceLock::new();
    SPARE.get_or_init(|| Mutex::new(Vec::new()))
}

/// The first `params.block_count()` blocks of `memory`, growing it when needed.
fn blocks<'m>(memory: &'m mut Memory, params: &Params) -> &'m mut [Block] {
    let n = params.block_count();
    if memory.len() < n {
        memory.resize(n, Block::new());
    }
    &mut memory[..n]
}

/// Runs argon2 work on the blocking pool, with a slot's memory, once a slot is free; after the
/// configured wait without one the caller gets 503 with `Retry-After` instead.
async fn with_hash_slot<T: Send + 'static>(
    work: impl FnOnce(&mut Memory) -> T + Send + 'static,
) -> AppResult<T> {
    let wait = std::time::Duration::from_millis(HASH_WAIT_MS.load(Ordering::Relaxed));
    let Ok(Ok(permit)) = tokio::time::timeout(wait, hash_slots().acquire()).await else {
        metrics::counter!("portal_password_hash_refused_total").increment(1);
        return Err(AppError::Unavailable {
            dependency: "password checking (busy)",
            retry_after: 1,
        });
    };
    let spare = || spare_memory().lock().unwrap_or_else(|e| e.into_inner());
    let mut memory = spare().pop().unwrap_or_default();
    let (result, memory) = tokio::task::spawn_blocking(move || {
        let result = work(&mut memory);
        (result, memory)
    })
    .await
    .map_err(AppError::internal)?;
    spare().push(memory);
    drop(permit);
    Ok(result)
}

/// argon2id with the default parameters (19 MiB, 2 passes) and a random 16-byte salt, as a PHC
/// string, computed in `memory`.
fn hash_in(memory: &mut Memory, password: &[u8]) -> Result<String, String> {
    let params = Params::default();
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Argon2::default()
        .hash_password_into_with_memory(password, &salt, &mut out, blocks(memory, &params))
        .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc` (any argon2 variant and parameters), computed
/// in `memory`; the comparison is constant-time (`Output`'s equality).
fn verify_in(memory: &mut Memory, password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm.as_str()),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut out = vec![0u8; expected.as_bytes().len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password, salt, &mut out, blocks(memory, &params))
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

/// Hashes a password with argon2id (default parameters, random salt). CPU-heavy: runs on the
/// blocking pool, at most one per core at a time (see [`with_hash_slot`]).
pub async fn hash_password(password: String) -> AppResult<String> {
    with_hash_slot(move |memory| hash_in(memory, password.as_bytes()))
        .await?
        .map_err(AppError::internal)
}

/// Verifies a password against a PHC string. With `phc = None` it still spends the same time on a
/// dummy hash, so "no such account" and "wrong password" cannot be told apart by timing. Bounded
/// like [`hash_password`].
pub async fn verify_password(password: String, phc: Option<String>) -> AppResult<bool> {
    with_hash_slot(move |memory| {
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
        verify_in(memory, password.as_bytes(), &phc) && known
    })
    .await
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_in(&mut Memory::new(), b"not-a-real-password").unwrap_or_default())
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

/// Documented inline, as the string enum it is on the wire.
impl salvo_oapi::ToSchema for Role {
    fn to_schema(_: &mut salvo_oapi::Components) -> salvo_oapi::RefOr<salvo_oapi::schema::Schema> {
        use salvo_oapi::schema::{BasicType, Object, Schema};
        salvo_oapi::RefOr::Type(Schema::Object(Box::new(
            Object::new()
                .schema_type(BasicType::String)
                .enum_values(["admin", "viewer"])
                .description("`admin` may change everything; `viewer` may only read."),
        )))
    }
}

/// Claims of an access token. `sub` is the staff id (partner) or member id (member).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub client: ClientId,
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
        subject: impl Into<Uuid>,
        client: ClientId,
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
        subject: impl Into<Uuid>,
        client: ClientId,
        role: Option<Role>,
        iat: i64,
        exp: i64,
    ) -> AppResult<String> {
        let claims = AccessClaims {
            sub: subject.into(),
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
        let (sub, client) = (Uuid::new_v4(), ClientId(Uuid::new_v4()));
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

    /// Hashes made in a slot's memory and hashes made by the library's own `PasswordHasher` (all
    /// hashes stored before slots existed) verify either way.
    #[test]
    fn slot_hashes_and_library_hashes_are_interchangeable() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut memory = Memory::new();
        let ours = hash_in(&mut memory, b"correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        Argon2::default()
            .verify_password(b"correct horse", ours.as_str())
            .unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(verify_in(&mut memory, b"correct horse", &theirs));
        assert!(!verify_in(&mut memory, b"correct horsE", &theirs));
        assert!(!verify_in(
            &mut memory,
            b"correct horse",
            "not a phc string"
        ));
        // The memory was reused, not grown.
        assert_eq!(memory.len(), Params::default().block_count());
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
