//! "A client's answers changed": what the worker (after a landing), the API (after a write) and
//! `portal-admin` tell every API instance over Redis pub/sub, so that each drops the cached
//! dashboard, analytics, funnel, billing and member-list answers of those clients at once (`portal-api`'s
//! read cache and `watch_announcements`). The channel sits beside the other announcements,
//! `{ns}:api-keys:revoked` and `{ns}:staff:changed`.
//!
//! Payload: client ids separated by commas, or [`ALL_CLIENTS`] (`*`) when something every client's
//! answers show has changed (the class catalogue).

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::domain::ids::ClientId;

/// Redis channel of [`ChangedClients`] announcements.
pub fn clients_changed_channel(namespace: &str) -> String {
    format!("{namespace}:clients:changed")
}

/// The payload that names every client.
pub const ALL_CLIENTS: &str = "*";

/// Whose answers changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedClients {
    /// Every client's (the catalogue changed, or the demo was seeded).
    All,
    /// These clients' (never empty when announced).
    Some(Vec<ClientId>),
}

impl ChangedClients {
    /// The announcement's payload: `*`, or the ids separated by commas.
    pub fn payload(&self) -> String {
        match self {
            Self::All => ALL_CLIENTS.to_string(),
            Self::Some(ids) => ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Reads a payload; `None` when it is not one ([`Self::payload`] writes only readable ones).
    pub fn parse(payload: &str) -> Option<Self> {
        let payload = payload.trim();
        if payload == ALL_CLIENTS {
            return Some(Self::All);
        }
        let ids = payload
            .split(',')
            .map(|id| id.trim().parse::<ClientId>().ok())
            .collect::<Option<Vec<_>>>()?;
        (!ids.is_empty()).then_some(Self::Some(ids))
    }
}

/// PUBLISHes `payload` on `channel`, waiting at most `limit`; returns how many subscribers heard
/// it. Announcements are best effort: the caller logs a failure, the change itself stands, and
/// the listeners' cache lifetimes are the fallback.
pub async fn publish(
    conn: &ConnectionManager,
    channel: &str,
    payload: &str,
    limit: Duration,
) -> Result<i64, String> {
    let mut conn = conn.clone();
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(channel).arg(payload);
    match tokio::time::timeout(limit, cmd.query_async::<i64>(&mut conn)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("timed out after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back() {
        let a: ClientId = "0190b3f0-0000-7000-8000-000000000001".parse().unwrap();
        let b: ClientId = "0190b3f0-0000-7000-8000-000000000002".parse().unwrap();
        for c in [ChangedClients::All, ChangedClients::Some(vec![a, b])] {
            assert_eq!(ChangedClients::parse(&c.payload()), Some(c));
        }
        assert_eq!(
            ChangedClients::Some(vec![a]).payload(),
            "0190b3f0-0000-7000-8000-000000000001"
        );
        for bad in [
            "",
            ",",
            "x",
            "*,",
            "0190b3f0-0000-7000-8000-000000000001,nope",
        ] {
            assert_eq!(ChangedClients::parse(bad), None, "{bad:?}");
        }
    }
}
