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
/// Voucher guesses (`/auth/voucher/validate` and registrations whose code is not usable) per
/// client address, whatever API key they come with: 30 per minute.
pub const VOUCHER_GUESS_PER_ADDRESS: Limit = Limit {
    name: "voucher-guess-address",
    max: 30,
    window: Duration::from_secs(60),
};
/// Voucher guesses per API key and client address: 10 per minute.
pub const VOUCHER_GUESS_PER_KEY_ADDRESS: Limit = Limit {
    name: "voucher-guess-key",
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

    /// Counts one attempt against each `(limit, subject)` and returns every window after it, in
    /// one atomic Redis round trip. Count first, decide after: of N parallel attempts exactly
    /// `max` see a count within the limit, whatever their timing. A window opens at its first
    /// attempt and is not extended by later ones.
    pub async fn hit(&self, checks: &[(&Limit, &str)]) -> AppResult<Vec<Window>> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (limit, subject) in checks {
            let key = self.key(limit, subject);
            pipe.incr(&key, 1)
                .cmd("EXPIRE")
                .arg(&key)
                .arg(limit.window.as_secs().max(1))
                .arg("NX")
                .ignore()
                .pttl(&key);
        }
        let mut conn = self.redis.clone();
        // INCR and PTTL of each check, in order (EXPIRE's answers are ignored).
        let replies: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(checks
            .iter()
            .zip(replies.chunks_exact(2))
            .map(|((limit, _), r)| window(limit, u32::try_from(r[0]).unwrap_or(u32::MAX), r[1]))
            .collect())
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

    /// Gives back `n` counted attempts of each window: attempts that turned out to be legitimate
    /// (a successful login, a registration with a usable code) or whose request did not go through
    /// (the queue was unreachable). Never below zero; a window that has closed meanwhile is left
    /// alone. One round trip.
    pub async fn give_back(&self, checks: &[(&Limit, &str)], n: u32) -> AppResult<()> {
        // EVAL, not EVALSHA: a pipeline cannot load the script on a NOSCRIPT answer.
        const GIVE_BACK: &str = r"local count = tonumber(redis.call('GET', KEYS[1]) or '0')
            if count > 0 then
              redis.call('DECRBY', KEYS[1], math.min(count, tonumber(ARGV[1])))
            end
            return 0";
        let mut pipe = redis::pipe();
        for (limit, subject) in checks {
            pipe.cmd("EVAL")
                .arg(GIVE_BACK)
                .arg(1)
                .arg(self.key(limit, subject))
                .arg(n)
                .ignore();
        }
        let mut conn = self.redis.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

/// The first window of `windows` that this attempt went over, if any.
pub fn first_over(windows: &[Window]) -> Option<Window> {
    windows.iter().copied().find(Window::over)
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
