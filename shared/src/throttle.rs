//! Fixed-window rate limits kept in Redis, so every API replica sees the same counts.
//! Subjects (emails, addresses) are hashed before they become keys: no personal data in Redis.

use std::time::Duration;

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Part of the Redis key and of log lines, e.g. `login-email`.
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

/// Failed staff/member logins per email: 5 per 15 minutes.
pub const LOGIN_PER_EMAIL: Limit = Limit {
    name: "login-email",
    max: 5,
    window: Duration::from_secs(15 * 60),
};
/// Failed logins per client address: 20 per 15 minutes.
pub const LOGIN_PER_ADDRESS: Limit = Limit {
    name: "login-address",
    max: 20,
    window: Duration::from_secs(15 * 60),
};
/// Voucher validation attempts per address (codes must not be enumerable): 10 per minute.
pub const VOUCHER_VALIDATE_PER_ADDRESS: Limit = Limit {
    name: "voucher-validate",
    max: 10,
    window: Duration::from_secs(60),
};

/// The state of one window after a check or a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    /// Attempts counted in the current window.
    pub count: u32,
    pub remaining: u32,
    /// Seconds until the window resets (0 when no window is open).
    pub reset_after: u64,
}

impl Window {
    /// No attempt is left: the next one would be over the limit (use after [`Throttle::peek`]).
    pub fn exceeded(&self) -> bool {
        self.remaining == 0
    }

    /// This attempt was over the limit (use after [`Throttle::hit`], which counted it).
    pub fn over(&self) -> bool {
        self.count > self.limit
    }

    pub fn into_error(self, message: &str) -> AppError {
        AppError::RateLimited {
            retry_after: self.reset_after.max(1),
            message: message.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Throttle {
    redis: ConnectionManager,
    namespace: String,
}

impl Throttle {
    pub fn new(redis: ConnectionManager, namespace: impl Into<String>) -> Self {
        Self {
            redis,
            namespace: namespace.into(),
        }
    }

    fn key(&self, limit: &Limit, subject: &str) -> String {
        let digest = Sha256::digest(subject.as_bytes());
        format!(
            "{}:throttle:{}:{}",
            self.namespace,
            limit.name,
            hex::encode(&digest[..16])
        )
    }

    /// Reads the window without counting.
    pub async fn peek(&self, limit: &Limit, subject: &str) -> AppResult<Window> {
        let key = self.key(limit, subject);
        let mut conn = self.redis.clone();
        let (count, pttl): (Option<u32>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut conn)
            .await?;
        Ok(window(limit, count.unwrap_or(0), pttl))
    }

    /// Counts one attempt and returns the window after it. The window opens at the first attempt.
    pub async fn hit(&self, limit: &Limit, subject: &str) -> AppResult<Window> {
        let key = self.key(limit, subject);
        let mut conn = self.redis.clone();
        let secs = limit.window.as_secs().max(1) as i64;
        let (count, _, pttl): (u32, i64, i64) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(secs)
            .arg("NX")
            .pttl(&key)
            .query_async(&mut conn)
            .await?;
        Ok(window(limit, count, pttl))
    }

    /// Forgets the window (e.g. after a successful login).
    pub async fn reset(&self, limit: &Limit, subject: &str) -> AppResult<()> {
        let key = self.key(limit, subject);
        let mut conn = self.redis.clone();
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
        Ok(())
    }

    /// Counts `n` attempts at once (e.g. the events of one batch) in one atomic step, opening the
    /// window at the first. When they would go over the limit they are not kept: the returned
    /// window is [`Window::over`] and still holds what remains for a smaller request.
    pub async fn hit_n(&self, limit: &Limit, subject: &str, n: u32) -> AppResult<Window> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"local count = redis.call('INCRBY', KEYS[1], ARGV[1])
                  if redis.call('PTTL', KEYS[1]) < 0 then
                    redis.call('EXPIRE', KEYS[1], ARGV[2])
                  end
                  local kept = count
                  if count > tonumber(ARGV[3]) then
                    kept = redis.call('DECRBY', KEYS[1], ARGV[1])
                  end
                  return {count, kept, redis.call('PTTL', KEYS[1])}",
            )
        });
        let key = self.key(limit, subject);
        let mut conn = self.redis.clone();
        let (count, kept, pttl): (i64, i64, i64) = SCRIPT
            .key(&key)
            .arg(n)
            .arg(limit.window.as_secs().max(1))
            .arg(limit.max)
            .invoke_async(&mut conn)
            .await?;
        let clamp = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        Ok(Window {
            remaining: limit.max.saturating_sub(clamp(kept)),
            ..window(limit, clamp(count), pttl)
        })
    }

    /// Takes back `n` attempts counted by [`Throttle::hit_n`] whose request did not go through
    /// (e.g. the queue was unreachable). A window that has closed meanwhile is left alone.
    pub async fn give_back(&self, limit: &Limit, subject: &str, n: u32) -> AppResult<()> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r"if redis.call('EXISTS', KEYS[1]) == 1 then
                    return redis.call('DECRBY', KEYS[1], ARGV[1])
                  end
                  return 0",
            )
        });
        let key = self.key(limit, subject);
        let mut conn = self.redis.clone();
        let _: i64 = SCRIPT.key(&key).arg(n).invoke_async(&mut conn).await?;
        Ok(())
    }
}

fn window(limit: &Limit, count: u32, pttl_ms: i64) -> Window {
    Window {
        limit: limit.max,
        count,
        remaining: limit.max.saturating_sub(count),
        reset_after: if pttl_ms > 0 {
            (pttl_ms as u64).div_ceil(1000)
        } else {
            0
        },
    }
}

/// Watch events per member: `per_minute` events (not requests) in each minute.
pub const fn member_events(per_minute: u32) -> Limit {
    Limit {
        name: "member-events",
        max: per_minute,
        window: Duration::from_secs(60),
    }
}
